"""An SSH tunnel (asyncssh) to a model host that is reachable only through SSH.

LOCAL_LLM_BASE_URL is then read as seen from the SSH server (e.g. http://127.0.0.1:8002/v1 on
that machine); the gateway listens on a free loopback port here and forwards each connection
through the SSH session. The server's host key is always verified. When the SSH connection
drops, the tunnel reconnects in the background (stamina: backoff from 0.5 s up to 30 s, for as
long as it takes) on the same local port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import stamina

from gateway.errors import ConfigError
from gateway.settings import Settings

log = logging.getLogger("gateway.tunnel")

# Reconnecting: the first wait, and the longest (a model host down for a while is retried every 30 s).
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class SshTunnel:
    """An open SSH connection with one local port forwarded to the model host, kept open."""

    def __init__(self, settings: Settings) -> None:
        if settings.local_llm_ssh_host is None:
            raise ConfigError("LOCAL_LLM_SSH_HOST is not set")
        target = urlsplit(settings.local_llm_base_url)
        if target.hostname is None:
            raise ConfigError(f"LOCAL_LLM_BASE_URL has no host: {settings.local_llm_base_url!r}")
        self.ssh_host = settings.local_llm_ssh_host
        self.where = f"{settings.local_llm_ssh_host}:{settings.local_llm_ssh_port}"
        self.target_host = target.hostname
        self.target_port = target.port or (443 if target.scheme == "https" else 80)
        self._target = target
        self.options: dict[str, Any] = {"port": settings.local_llm_ssh_port, "keepalive_interval": 30}
        if settings.local_llm_ssh_user:
            self.options["username"] = settings.local_llm_ssh_user
        if settings.local_llm_ssh_key is not None:
            self.options["client_keys"] = [str(settings.local_llm_ssh_key)]
        if settings.local_llm_ssh_known_hosts is not None:
            self.options["known_hosts"] = str(settings.local_llm_ssh_known_hosts)
        self.local_port = 0
        self.connection: Any = None
        self.listener: Any = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """LOCAL_LLM_BASE_URL with its host and port replaced by the tunnel's loopback end."""
        target = self._target
        return urlunsplit(("http", f"127.0.0.1:{self.local_port}", target.path, target.query, ""))

    async def open(self) -> None:
        """Connect to LOCAL_LLM_SSH_HOST and forward a local port to LOCAL_LLM_BASE_URL's host and port.

        Raises ConfigError naming the SSH server when it cannot be reached, its host key is not
        known, or it refuses the login or the port forward.
        """
        await self._connect()
        self._watcher = asyncio.create_task(self._keep_open())

    async def _connect(self) -> None:
        # Imported here, not at the top: a tenth of a second of CPU that a gateway without a
        # tunnel (nearly every one) would pay at each start.
        import asyncssh

        try:
            connection = await asyncssh.connect(self.ssh_host, **self.options)
        except (OSError, asyncssh.Error) as exc:
            raise ConfigError(f"SSH tunnel: cannot connect to {self.where}: {exc}") from exc
        try:
            listener = await connection.forward_local_port(
                "127.0.0.1", self.local_port, self.target_host, self.target_port
            )
        except (OSError, asyncssh.Error) as exc:
            connection.close()
            where = f"{self.target_host}:{self.target_port}"
            raise ConfigError(f"SSH tunnel: {self.where} refused forwarding to {where}: {exc}") from exc
        self.connection, self.listener = connection, listener
        self.local_port = listener.get_port()
        log.info(
            "SSH tunnel via %s: 127.0.0.1:%d -> %s:%d",
            self.where,
            self.local_port,
            self.target_host,
            self.target_port,
        )

    async def _keep_open(self) -> None:
        while True:
            await self.connection.wait_closed()
            self.listener.close()
            log.warning("SSH tunnel via %s lost; reconnecting", self.where)
            async for attempt in stamina.retry_context(
                on=ConfigError,
                attempts=None,
                timeout=None,
                wait_initial=FIRST_BACKOFF,
                wait_max=MAX_BACKOFF,
                wait_jitter=FIRST_BACKOFF,
            ):
                with attempt:
                    try:
                        await self._connect()
                    except ConfigError as exc:
                        log.warning("%s; retrying in %.1fs or more", exc.message, attempt.next_wait)
                        raise

    async def close(self) -> None:
        if self.connection is None:
            return
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self.listener.close()
        self.connection.close()
        await self.connection.wait_closed()
