"""The fetcher's lifespan closes everything it opened, on a failed start as on a stop, and a failed
start reports what failed (here: a NATS whose JetStream never answers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from fetcher.app import create_app
from fetcher.github import GitHubClient
from fetcher.subscribers import FETCHER_KEY, SLOTS_KEY
from servicekit.nats_connect import NatsUnreachable
from tests.fetcher.helpers import fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub
from tests.support.lifespan import failed_start, nats_connections, spy_on
from tests.support.nats import running_nats_server
from tests.support.ports import free_port
from tests.support.provision import provision_jobs_async
from tests.support.waiting import until

pytestmark = [pytest.mark.nats]

OPENED = (NatsClient, GitHubClient)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[type, list[Any]]:
    """The instances of OPENED created from now on."""
    return spy_on(monkeypatch, OPENED)


async def test_jetstream_never_ready_is_the_error_and_the_connection_is_closed(
    tmp_path: Path, fake_github: FakeGitHub, made: dict[type, list[Any]]
) -> None:
    monitor = free_port()
    with running_nats_server(tmp_path / "plain", jetstream=False, monitor_port=monitor) as url:
        app = create_app(
            fetcher_settings(url, fake_github.api_url, nats_start_wait_s=1), configure_logging=False
        )
        error = await failed_start(app.start_lifespan_context())
        connections = nats_connections(monitor)
    assert isinstance(error, NatsUnreachable), repr(error)
    assert str(error).startswith(f"JetStream at {url} was not ready within 1 s (NATS_START_WAIT_S)")
    # FastStream stops the broker only once the lifespan has started: the lifespan closes it.
    assert connections == 0
    assert len(made[NatsClient]) == 1
    assert made[NatsClient][0].is_closed
    assert made[GitHubClient] == []  # opened only once JetStream answers
    assert app.broker is not None
    assert app.broker.context.get(FETCHER_KEY) is None
    assert app.broker.context.get(SLOTS_KEY) is None


async def test_a_stop_closes_the_github_client_and_the_connection(
    tmp_path: Path, fake_github: FakeGitHub, made: dict[type, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    monitor = free_port()
    caplog.set_level(logging.INFO, logger="fetcher")
    with running_nats_server(tmp_path / "jetstream", monitor_port=monitor) as url:
        await provision_jobs_async(url)  # the analyzer's part: the fetcher only checks the streams
        async with running_fetcher(fetcher_settings(url, fake_github.api_url)):
            # Started through: FastStream's lifespan yields before its broker starts the subscribers
            # (a stop before that leaves a pull subscriber spinning on the closed connection).
            await until(lambda: any(r.getMessage().startswith("fetcher ready") for r in caplog.records))
            assert nats_connections(monitor) == 1
            (github,) = made[GitHubClient]
            assert not github._client.is_closed
        await until(lambda: nats_connections(monitor) == 0, timeout=10)
    assert github._client.is_closed
    assert all(nc.is_closed for nc in made[NatsClient])
