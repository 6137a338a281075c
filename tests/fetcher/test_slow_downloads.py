"""A slow or stuck download (issue #11, item 1): it never holds other jobs back, and it ends at
FETCHER_DOWNLOAD_TIMEOUT_S with a reason naming the setting."""

from __future__ import annotations

import asyncio

import pytest

from jobs_contract import JobStatus
from tests.fetcher.helpers import Analyzer, fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.nats

FILES: dict[str, bytes | str] = {"pkg/mod.py": "def f():\n    return 1\n" * 50}


async def started(jobs: Analyzer, job_id: str) -> None:
    """Until the job is fetching with some bytes received (its download is under way)."""
    for _ in range(3000):
        record = await jobs.record(job_id)
        if record.status is JobStatus.FETCHING and record.bytes > 0:
            return
        assert record.status is not JobStatus.FAILED, record.error
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never started: {record}")


async def test_a_slow_download_does_not_delay_other_jobs(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    # Honest Content-Length, one byte every 0.2 s: minutes for the whole archive, and no single
    # read ever waits as long as the HTTP timeout.
    fake_github.add_repo("octo", "slow", FILES)
    fake_github.trickle("octo", "slow", size=1, delay=0.2)
    for i in range(4):
        fake_github.add_repo("octo", f"fast{i}", {f"m{i}.py": f"x = {i}\n"})
    settings = fetcher_settings(
        nats_url, fake_github.api_url, fetcher_concurrency=2, fetcher_download_timeout_s=600.0
    )

    async with running_fetcher(settings):
        slow = await jobs.submit("octo", "slow")
        await started(jobs, slow)
        # More jobs than the one slot left: each must still start as soon as the one before ends.
        fast = [await jobs.submit("octo", f"fast{i}") for i in range(4)]
        records = [await jobs.wait(job_id) for job_id in fast]
        still = await jobs.record(slow)

    assert [r.status for r in records] == [JobStatus.READY] * 4
    assert still.status is JobStatus.FETCHING


async def test_a_download_past_its_deadline_fails_naming_the_setting(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    fake_github.add_repo("octo", "slow", FILES)
    fake_github.trickle("octo", "slow", size=1, delay=0.2)
    fake_github.add_repo("octo", "fine", {"ok.py": "ok = True\n"})
    settings = fetcher_settings(nats_url, fake_github.api_url, fetcher_download_timeout_s=1.5)

    async with running_fetcher(settings):
        record = await jobs.wait(await jobs.submit("octo", "slow"))
        after = await jobs.wait(await jobs.submit("octo", "fine"))

    assert record.status is JobStatus.FAILED
    assert "did not finish within FETCHER_DOWNLOAD_TIMEOUT_S=1.5 s" in (record.error or "")
    # Not retried: a slow server stays slow, and each attempt would hold a slot that long again.
    assert len(fake_github.requests_to("/codeload/octo/slow/")) == 1
    assert after.status is JobStatus.READY
