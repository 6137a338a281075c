"""An SSH tunnel (asyncssh) to a model host that is reachable only through SSH.

LOCAL_LLM_BASE_URL is then read as seen from the SSH server (e.g. http://127.0.0.1:8002/v1 on
that machine); the gateway listens on a free loopback port here and forwards each connection
through the SSH session. The server's host key is always verified.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncssh

from gateway.errors import ConfigError
from gateway.settings import Settings

log = logging.getLogger("gateway.tunnel")


class SshTunnel:
    """An open SSH connection with one local port forwarded to the model host."""

    def __init__(self, connection: Any, listener: Any, base_url: str) -> None:
        self.connection = connection
        self.listener = listener
        self.base_url = base_url

    @classmethod
    async def open(cls, settings: Settings) -> SshTunnel:
        """Connect to LOCAL_LLM_SSH_HOST and forward a local port to LOCAL_LLM_BASE_URL's host and port.

        Raises ConfigError naming the SSH server when it cannot be reached, its host key is not
        known, or it refuses the login or the port forward.
        """
        if settings.local_llm_ssh_host is None:
            raise ConfigError("LOCAL_LLM_SSH_HOST is not set")
        target = urlsplit(settings.local_llm_base_url)
        if target.hostname is None:
            raise ConfigError(f"LOCAL_LLM_BASE_URL has no host: {settings.local_llm_base_url!r}")
        target_port = target.port or (443 if target.scheme == "https" else 80)
        options: dict[str, Any] = {"port": settings.local_llm_ssh_port, "keepalive_interval": 30}
        if settings.local_llm_ssh_user:
            options["username"] = settings.local_llm_ssh_user
        if settings.local_llm_ssh_key is not None:
            options["client_keys"] = [str(settings.local_llm_ssh_key)]
        if settings.local_llm_ssh_known_hosts is not None:
            options["known_hosts"] = str(settings.local_llm_ssh_known_hosts)
        where = f"{settings.local_llm_ssh_host}:{settings.local_llm_ssh_port}"
        try:
            connection = await asyncssh.connect(settings.local_llm_ssh_host, **options)
        except (OSError, asyncssh.Error) as exc:
            raise ConfigError(f"SSH tunnel: cannot connect to {where}: {exc}") from exc
        try:
            listener = await connection.forward_local_port("127.0.0.1", 0, target.hostname, target_port)
        except (OSError, asyncssh.Error) as exc:
            connection.close()
            raise ConfigError(
                f"SSH tunnel: {where} refused forwarding to {target.hostname}:{target_port}: {exc}"
            ) from exc
        local = f"127.0.0.1:{listener.get_port()}"
        base_url = urlunsplit(("http", local, target.path, target.query, ""))
        log.info("SSH tunnel via %s: %s -> %s:%d", where, local, target.hostname, target_port)
        return cls(connection, listener, base_url)

    async def close(self) -> None:
        self.listener.close()
        self.connection.close()
        await self.connection.wait_closed()
