"""SIGTERM on a fetcher: it stops pulling, hands a running fetch back at once (the job queued
again, the request nacked for another fetcher), never fails the job for it, and exits 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fetcher.worker import JobSlots, Outcome
from jobs_contract import JobStatus
from tests.fetcher.helpers import Analyzer
from tests.support.fake_github import FakeGitHub
from tests.support.servers import service_process

SHUTDOWN_TIMEOUT_S = 20
# Far beyond the test's wait: a job that came back only after the ack wait would fail the test.
ACK_WAIT_S = 120


class RecordingDelivery:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def ack(self) -> None:
        self.calls.append("ack")

    async def nack(self, delay: float | None = None) -> None:
        self.calls.append(f"nack {delay}")

    async def reject(self) -> None:
        self.calls.append("reject")

    async def in_progress(self) -> None:
        self.calls.append("in_progress")


async def test_closed_slots_hand_requests_back_and_release_a_waiting_caller() -> None:
    slots = JobSlots(1)
    started = asyncio.Event()

    async def job() -> Outcome:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("cancelled before")

    first = RecordingDelivery()
    # With one slot taken, start() waits for a free one: the caller pulls nothing meanwhile.
    caller = asyncio.create_task(slots.start(job(), hand_back=first))
    await started.wait()
    await asyncio.sleep(0.05)
    assert not caller.done()
    slots.stop_intake()
    await asyncio.wait_for(caller, timeout=5)  # returns at once, though the job still runs
    assert slots.running == 1

    late = RecordingDelivery()
    ran: list[str] = []

    async def never() -> Outcome:
        ran.append("ran")
        return Outcome("j2", "ready")

    await slots.start(never(), hand_back=late)
    assert late.calls == ["nack None"]  # handed back for redelivery now, not after the ack wait
    await slots.close()
    assert ran == []
    assert slots.running == 0


@pytest.mark.nats
@pytest.mark.slow
async def test_a_stopped_fetcher_hands_its_download_to_the_other_and_exits_0(
    fake_github: FakeGitHub, jobs: Analyzer, nats_url: str, service_logs: Path
) -> None:
    fake_github.add_repo("octo", "slow", {"pkg/mod.py": "def f():\n    return 1\n"})
    fake_github.trickle("octo", "slow", size=1, delay=0.5)  # minutes for the whole archive
    env = {
        "NATS_URL": nats_url,
        "GITHUB_API_URL": fake_github.api_url,
        "FETCHER_ACK_WAIT_S": str(ACK_WAIT_S),
        "FETCHER_PROGRESS_INTERVAL_S": "0",
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    }
    with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT") as first:
        job_id = await jobs.submit("octo", "slow")
        deadline = time.monotonic() + 60
        while (record := await jobs.record(job_id)).bytes == 0:
            assert time.monotonic() < deadline, f"no download started: {record}"
            await asyncio.sleep(0.05)
        assert record.status == JobStatus.FETCHING
        with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT") as second:
            fake_github.trickle("octo", "slow", size=64 * 1024, delay=0.0)  # the next download is quick
            code = await asyncio.to_thread(first.terminate, SHUTDOWN_TIMEOUT_S + 10)
            record = await jobs.wait(job_id, timeout=ACK_WAIT_S / 2)
            second_log = second.log()
        first_log = first.log()

    assert code == 0, first_log
    assert (record.status, record.error) == (JobStatus.READY, None)
    assert "the job is queued again for another fetcher" in first_log
    assert "job ready" not in first_log
    assert "job ready: octo/slow@" in second_log
    assert jobs.events_for(job_id, "failed") == []
    assert "Traceback" not in first_log + second_log
