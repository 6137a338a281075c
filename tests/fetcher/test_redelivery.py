"""A fetcher killed mid-download: the request comes back, and the job never stays "fetching"."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.request
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from fetcher.subscribers import MAX_DELIVERIES_ADVISORY
from jobs_contract import FETCH_STREAM, FETCH_SUBJECT, JobStatus
from tests.fetcher.helpers import Analyzer, fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub
from tests.support.servers import ServiceProcess, service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]

ACK_WAIT_S = 2.0


def slow_repo(fake_github: FakeGitHub) -> None:
    """About 1 MB served in 16 KiB pieces 50 ms apart: a download of a few seconds."""
    # Random bytes: they do not compress, so the archive really is about 1 MB.
    files: dict[str, bytes | str] = {f"mod{i}.py": random.Random(i).randbytes(16 * 1024) for i in range(64)}
    fake_github.add_repo("octo", "slow", files)
    fake_github.chunk_size = 16 * 1024
    fake_github.chunk_delay = 0.05


def worker_env(nats_url: str, fake_github: FakeGitHub, max_deliveries: int) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "GITHUB_API_URL": fake_github.api_url,
        "FETCHER_ACK_WAIT_S": str(ACK_WAIT_S),
        "FETCHER_MAX_DELIVERIES": str(max_deliveries),
        "FETCHER_PROGRESS_INTERVAL_S": "0",
    }


async def kill_mid_download(
    service: ServiceProcess, fake_github: FakeGitHub, jobs: Analyzer, job_id: str
) -> None:
    """Wait until the worker process is downloading the job's archive, then SIGKILL it."""
    deadline = time.monotonic() + 30
    while (
        not fake_github.requests_to("/codeload/")
        or (await jobs.record(job_id)).status is not JobStatus.FETCHING
    ):
        assert time.monotonic() < deadline, service.log()
        await asyncio.sleep(0.02)
    service.process.kill()
    service.process.wait()


async def test_a_killed_fetcher_s_request_is_redelivered_and_finished_by_another(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer, service_logs: Path
) -> None:
    slow_repo(fake_github)
    env = worker_env(nats_url, fake_github, max_deliveries=3)
    with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT") as first:
        with urllib.request.urlopen(f"{first.url}/health") as response:
            assert json.loads(response.read()) == {"status": "ok", "nats": nats_url}
        job_id = await jobs.submit("octo", "slow")
        await kill_mid_download(first, fake_github, jobs, job_id)

    settings = fetcher_settings(
        nats_url, fake_github.api_url, fetcher_ack_wait_s=ACK_WAIT_S, fetcher_max_deliveries=3
    )
    async with running_fetcher(settings):
        record = await jobs.wait(job_id)

    assert record.status is JobStatus.READY, record.error
    assert record.files == 64
    assert len(fake_github.requests_to("/codeload/")) == 2
    assert len(jobs.events_for(job_id, "completed")) == 1
    assert "fetcher ready" in first.log()


@pytest.mark.parametrize(
    "pause_s", [0.0, 2 * ACK_WAIT_S], ids=["next-fetcher-at-once", "no-fetcher-for-a-while"]
)
async def test_a_fetcher_killed_on_the_last_attempt_leaves_a_failed_job(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer, service_logs: Path, pause_s: float
) -> None:
    slow_repo(fake_github)
    env = worker_env(nats_url, fake_github, max_deliveries=1)
    with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT") as only:
        job_id = await jobs.submit("octo", "slow")
        await kill_mid_download(only, fake_github, jobs, job_id)
    # With no fetcher running when the ack wait runs out, the next one to start still fails the job.
    await asyncio.sleep(pause_s)

    settings = fetcher_settings(
        nats_url, fake_github.api_url, fetcher_ack_wait_s=ACK_WAIT_S, fetcher_max_deliveries=1
    )
    async with running_fetcher(settings):
        record = await jobs.wait(job_id)

    assert record.status is JobStatus.FAILED
    assert record.error == (
        "the fetch was abandoned after 1 attempt (FETCHER_MAX_DELIVERIES=1): "
        "each time the fetcher working on it stopped before finishing"
    )
    assert len(fake_github.requests_to("/codeload/")) == 1
    assert len(jobs.events_for(job_id, "failed")) == 1


async def test_the_max_deliveries_advisory_fails_the_job_and_a_late_result_does_not_undo_it(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fetcher")
    slow_repo(fake_github)
    settings = fetcher_settings(nats_url, fake_github.api_url)
    async with running_fetcher(settings):
        job_id = await jobs.submit("octo", "slow")
        while (await jobs.record(job_id)).status is not JobStatus.FETCHING:
            await asyncio.sleep(0.02)
        message = await jobs.nc.jetstream().get_last_msg(FETCH_STREAM, FETCH_SUBJECT)
        # What the server publishes when a request used up its deliveries without an ack.
        advisory = {
            "type": "io.nats.jetstream.advisory.v1.max_deliver",
            "stream_seq": message.seq,
            "deliveries": 4,
        }
        await jobs.nc.publish(MAX_DELIVERIES_ADVISORY, json.dumps(advisory).encode())

        record = await jobs.wait(job_id)
        assert record.status is JobStatus.FAILED
        assert record.error == (
            "the fetch was abandoned after 3 attempts (FETCHER_MAX_DELIVERIES=3): "
            "each time the fetcher working on it stopped before finishing"
        )
        # The fetch still running notices at its next progress report, and stops.
        while "job became failed meanwhile; stopped working on it" not in caplog.text:
            await asyncio.sleep(0.05)

    assert (await jobs.record(job_id)).status is JobStatus.FAILED
    assert len(jobs.events_for(job_id, "failed")) == 1
    assert jobs.events_for(job_id, "completed") == []
    with pytest.raises(NotFoundError):
        await jobs.nc.jetstream().get_msg(FETCH_STREAM, message.seq)


async def test_a_fetch_longer_than_the_ack_wait_is_not_redelivered_while_it_runs(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    slow_repo(fake_github)  # about 3 s of download, three times the ack wait
    settings = fetcher_settings(nats_url, fake_github.api_url, fetcher_ack_wait_s=1.0)

    # A second, idle fetcher would get the request if the first stopped reporting progress.
    async with running_fetcher(settings), running_fetcher(settings):
        record = await jobs.wait(await jobs.submit("octo", "slow"))

    assert record.status is JobStatus.READY, record.error
    assert len(fake_github.requests_to("/codeload/")) == 1
