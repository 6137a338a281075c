"""A fetch that meets NATS not answering comes back after the whole ack wait, not the short backoff.

A cluster electing a new leader answers nothing for about 10 s; retries after 0.1 s and 0.2 s
spent every delivery inside that gap (the node-loss test found it).
"""

from __future__ import annotations

import contextlib
from contextlib import ExitStack
from pathlib import Path

import msgspec
import nats
import pytest

from fetcher.github import GitHubClient, GitHubConfig
from fetcher.worker import Fetcher
from jobs_contract import FetchRequest, ensure_jetstream
from jobs_contract.settings import StorageSettings
from tests.fetcher.helpers import fetcher_settings
from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server

pytestmark = pytest.mark.nats


class RecordingDelivery:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []

    async def ack(self) -> None:
        self.calls.append(("ack", None))

    async def nack(self, delay: float | None = None) -> None:
        self.calls.append(("nack", delay))

    async def reject(self) -> None:
        self.calls.append(("reject", None))

    async def in_progress(self) -> None:
        self.calls.append(("in_progress", None))


@pytest.mark.slow
async def test_nats_not_answering_is_retried_after_the_ack_wait(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    with ExitStack() as server:
        url = server.enter_context(running_nats_server(tmp_path / "jetstream"))
        settings = fetcher_settings(url, fake_github.api_url, fetcher_ack_wait_s=7.0)
        nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
        stores = await ensure_jetstream(nc.jetstream(timeout=1.0), StorageSettings(_env_file=None))
        server.close()  # NATS goes quiet before the job's record is read
        request = FetchRequest(job_id="j-outage", owner="octo", repo="demo", requested_at=1.0)
        delivery = RecordingDelivery()
        config = GitHubConfig(
            api_url=settings.github_api_url,
            token=None,
            timeout_s=5.0,
            retries=0,
            backoff_s=0.05,
            rate_limit_max_wait_s=1.0,
            max_redirects=1,
            max_download_bytes=settings.fetcher_max_download_bytes,
        )
        try:
            async with GitHubClient(config) as github:
                fetcher = Fetcher(settings, github, stores, nc)
                outcome = await fetcher.handle(msgspec.json.encode(request), delivery, attempt=1)
        finally:
            # nats-py's close of a connection still reconnecting to the stopped server may find
            # its transport gone: this test's own client, nothing of the fetcher's.
            with contextlib.suppress(ConnectionResetError):
                await nc.close()
    assert (outcome.action, outcome.nats_trouble) == ("retry", True)
    # The short backoff would be 0.05 * 2 = 0.1 s.
    assert [call for call in delivery.calls if call[0] != "in_progress"] == [("nack", 7.0)]
    assert fake_github.requests == []
