"""A slow or stuck download (issue #11, item 1): it never holds other jobs back, and it ends at
FETCHER_DOWNLOAD_TIMEOUT_S with a reason naming the setting; one slower than the floor rate gives
its slot up sooner (issue #20), so downloads that trickle cannot keep every other job queued."""

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
    # No floor rate: this is about the slot it holds meanwhile (the floor is tested below).
    settings = fetcher_settings(
        nats_url,
        fake_github.api_url,
        fetcher_concurrency=2,
        fetcher_download_timeout_s=600.0,
        fetcher_min_rate_bytes_s=0,
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


async def test_downloads_below_the_floor_rate_give_their_slots_to_queued_jobs(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    # Issue #20: two trickling downloads fill both slots (FETCHER_CONCURRENCY=2); a third job
    # must not wait for FETCHER_DOWNLOAD_TIMEOUT_S (here 600 s) but start once they fall below
    # the floor (100 bytes/s over 1 s; they send 2 bytes/s, minutes for the whole archive).
    for name in ("slow1", "slow2"):
        fake_github.add_repo("octo", name, FILES)
        fake_github.trickle("octo", name, size=1, delay=0.5)
    fake_github.add_repo("octo", "fine", {"ok.py": "ok = True\n"})
    settings = fetcher_settings(
        nats_url,
        fake_github.api_url,
        fetcher_concurrency=2,
        fetcher_download_timeout_s=600.0,
        fetcher_min_rate_bytes_s=100,
        fetcher_min_rate_window_s=1.0,
    )

    async with running_fetcher(settings):
        slow = [await jobs.submit("octo", name) for name in ("slow1", "slow2")]
        for job_id in slow:
            await started(jobs, job_id)
        fine = await jobs.submit("octo", "fine")
        # The bound only keeps a broken run finite: it is a tenth of the download deadline.
        ready = await jobs.wait(fine, timeout=60)
        failed = [await jobs.wait(job_id) for job_id in slow]

    assert ready.status is JobStatus.READY
    for record in failed:
        assert record.status is JobStatus.FAILED
        assert "slower than FETCHER_MIN_RATE_BYTES_S=100 bytes/s over FETCHER_MIN_RATE_WINDOW_S=1 s" in (
            record.error or ""
        ), record.error
    # The third job started only after a slow one had given up its slot: its first event comes
    # after the first failure.
    order = [(event.job_id, event.event) for _, event in jobs.events]
    first_failure = min(order.index((job_id, "failed")) for job_id in slow)
    fine_started = next(i for i, (job_id, _) in enumerate(order) if job_id == fine)
    assert fine_started > first_failure
    # Not retried: a slow server stays slow, and each attempt would hold a slot a window again.
    for name in ("slow1", "slow2"):
        assert len(fake_github.requests_to(f"/codeload/octo/{name}/")) == 1
