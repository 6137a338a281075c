"""`python -m fetcher` against a real nats-server starts and idles without a traceback (issue #11,
item 12): FastStream's supervisor once logged the pull fetch's TimeoutError in the first minute."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.fake_github import FakeGitHub
from tests.support.servers import service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def test_the_fetcher_starts_and_idles_quietly(
    nats_url: str, fake_github: FakeGitHub, service_logs: Path
) -> None:
    env = {"NATS_URL": nats_url, "GITHUB_API_URL": fake_github.api_url}
    with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT") as fetcher:
        # Idle past two pull timeouts (5 s each): the empty fetches are where the traceback came from.
        time.sleep(11)
        log = fetcher.log()
        assert fetcher.process.poll() is None, log

    assert "fetcher ready" in log
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert "raised an exception" not in log
