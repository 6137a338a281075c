"""The SSH tunnel to a model host reachable only by SSH, against an asyncssh server started here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from gateway.errors import ConfigError
from gateway.tunnel import SshTunnel
from tests.gateway.conftest import ADD, gateway_client, local_settings
from tests.support.fake_llm import FakeLLM, review_reply


@dataclass
class SshServer:
    port: int
    key_path: Path
    known_hosts: Path
    forwards: list[tuple[str, int]] = field(default_factory=list)
    connections: list[Any] = field(default_factory=list)


@pytest.fixture
async def ssh_server(tmp_path: Path) -> AsyncIterator[SshServer]:
    """An asyncssh server on loopback: one authorised client key, direct TCP forwarding allowed."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    key_path.write_bytes(client_key.export_private_key())
    key_path.chmod(0o600)
    forwards: list[tuple[str, int]] = []
    connections: list[Any] = []

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: Any) -> None:
            connections.append(conn)

        def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
            forwards.append((dest_host, dest_port))
            return True

    server = await asyncssh.create_server(
        Server,
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
    )
    port = server.sockets[0].getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    try:
        yield SshServer(port, key_path, known_hosts, forwards, connections)
    finally:
        server.close()
        await server.wait_closed()


def tunnel_settings(fake: FakeLLM, ssh: SshServer, **values: Any) -> Any:
    ssh_values = {
        "local_llm_ssh_host": "127.0.0.1",
        "local_llm_ssh_port": ssh.port,
        "local_llm_ssh_user": "gateway",
        "local_llm_ssh_key": ssh.key_path,
        "local_llm_ssh_known_hosts": ssh.known_hosts,
    }
    return local_settings(fake, **{**ssh_values, **values})


async def test_reviews_reach_the_model_host_through_the_tunnel(
    local_fake: FakeLLM, ssh_server: SshServer
) -> None:
    local_fake.script("/chat/completions", review_reply("Reject booleans, they are ints."))
    fake_port = int(local_fake.url.rsplit(":", 1)[1])
    async with gateway_client(tunnel_settings(local_fake, ssh_server)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
        ready = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["suggestions"][0] == "Reject booleans, they are ints."
    assert ready.json() == {"status": "ready", "providers": {"local": "ok"}}
    assert [r.path for r in local_fake.requests][:2] == ["/v1/models", "/v1/chat/completions"]
    # Every request went through the SSH server to the model host's address as the server sees it.
    assert ssh_server.forwards
    assert set(ssh_server.forwards) == {("127.0.0.1", fake_port)}
    # The model host saw the connection come from the tunnel, not straight from the gateway's URL.
    assert all(r.headers["host"] != local_fake.url.removeprefix("http://") for r in local_fake.requests)


async def test_an_unknown_host_key_is_refused(
    local_fake: FakeLLM, ssh_server: SshServer, tmp_path: Path
) -> None:
    other = tmp_path / "other_known_hosts"
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    other.write_text(f"[127.0.0.1]:{ssh_server.port} {stranger}")
    settings = tunnel_settings(local_fake, ssh_server, local_llm_ssh_known_hosts=other)
    with pytest.raises(ConfigError, match=rf"SSH tunnel: cannot connect to 127.0.0.1:{ssh_server.port}: "):
        await SshTunnel(settings).open()
    assert ssh_server.forwards == []


async def test_a_key_the_server_does_not_know_is_refused(
    local_fake: FakeLLM, ssh_server: SshServer, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong_key"
    wrong.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    settings = tunnel_settings(local_fake, ssh_server, local_llm_ssh_key=wrong)
    with pytest.raises(ConfigError, match=r"SSH tunnel: cannot connect to 127\.0\.0\.1"):
        await SshTunnel(settings).open()


async def test_a_dropped_ssh_connection_is_reopened_on_the_same_port(
    local_fake: FakeLLM, ssh_server: SshServer
) -> None:
    async with gateway_client(tunnel_settings(local_fake, ssh_server, local_llm_model="m")) as client:
        before = await client.post("/analyze", json={"function_code": ADD})
        assert len(ssh_server.connections) == 1
        ssh_server.connections[0].close()  # the SSH server hangs up on the gateway
        for _ in range(100):
            if len(ssh_server.connections) == 2 and (await client.get("/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        after = await client.post("/analyze", json={"function_code": ADD + "\n"})
    assert before.status_code == after.status_code == 200
    assert len(ssh_server.connections) == 2
    assert len(local_fake.sent("/chat/completions")) == 2
