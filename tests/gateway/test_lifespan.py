"""The gateway's lifespan closes everything it opened, on a failed start as on a stop, and a failed
start reports what failed (here: the shared review cache's NATS, whose JetStream never answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient

from gateway.app import create_app
from gateway.errors import ConfigError
from tests.gateway.conftest import gateway_client, local_settings
from tests.support.fake_llm import FakeLLM
from tests.support.lifespan import failed_start, nats_connections, spy_on
from tests.support.nats import running_nats_server
from tests.support.ports import free_port
from tests.support.waiting import until

pytestmark = [pytest.mark.nats]

# The upstream client's session and the cache's NATS connection.
OPENED = (aiohttp.ClientSession, NatsClient)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[type, list[Any]]:
    """The instances of OPENED created from now on."""
    return spy_on(monkeypatch, OPENED)


async def test_a_cache_whose_jetstream_never_answers_is_the_error_and_the_upstream_is_closed(
    tmp_path: Path, local_fake: FakeLLM, made: dict[type, list[Any]]
) -> None:
    monitor = free_port()
    with running_nats_server(tmp_path / "plain", jetstream=False, monitor_port=monitor) as url:
        app = create_app(local_settings(local_fake, nats_url=url, nats_start_wait_s=1))
        error = await failed_start(app.lifespan())
        connections = nats_connections(monitor)
    assert isinstance(error, ConfigError), repr(error)
    assert error.message.startswith(
        f"review cache: JetStream at {url} was not ready within 1 s (NATS_START_WAIT_S)"
    )
    assert connections == 0
    assert len(made[NatsClient]) == 1
    assert made[NatsClient][0].is_closed
    # The upstream opened before the cache: closed again.
    assert len(made[aiohttp.ClientSession]) == 1
    assert made[aiohttp.ClientSession][0].closed


async def test_a_stop_closes_the_upstream_and_the_cache(
    tmp_path: Path, local_fake: FakeLLM, made: dict[type, list[Any]]
) -> None:
    monitor = free_port()
    with running_nats_server(tmp_path / "jetstream", monitor_port=monitor) as url:
        async with gateway_client(local_settings(local_fake, nats_url=url)) as client:
            assert (await client.get("/health")).status_code == 200
            assert nats_connections(monitor) == 1
        await until(lambda: nats_connections(monitor) == 0, timeout=10)
    assert all(nc.is_closed for nc in made[NatsClient])
    assert len(made[aiohttp.ClientSession]) == 1  # the upstream's
    assert made[aiohttp.ClientSession][0].closed
