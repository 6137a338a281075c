"""A wait for a job leaves no consumer on the KV stream once it is over."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from analyzer.errors import JobNotReady
from analyzer.jobs import WATCH_INACTIVE_S, JobStore
from jobs_contract import JobStatus
from tests.analyzer.stores import job_record, job_stores, put_job

pytestmark = pytest.mark.nats


@pytest.mark.slow
async def test_waits_for_jobs_leave_no_consumer_behind(nats_url: str) -> None:
    # Each wait's KV watch used to leave its consumer for 5 minutes (nats-py's default), and a
    # stream holds 1,000: past 1,000 waits in 5 minutes, every wait failed with 503.
    async with job_stores(nats_url) as stores:
        client = await nats.connect(nats_url)
        try:
            js = client.jetstream()
            jobs = JobStore(js, stores.kv)
            stream = f"KV_{stores.kv._name}"
            for _ in range(15):
                record = job_record(JobStatus.FETCHING)
                await put_job(stores, record)
                with pytest.raises(JobNotReady):
                    # Long enough for the watch to be set up (a wait given up while nats-py sets it up
                    # is another matter: the watch task is cancelled inside `kv.watch`).
                    await jobs.wait_ready(record.job_id, 0.3)
            deadline = time.monotonic() + WATCH_INACTIVE_S + 5
            while (
                count := (await js.stream_info(stream)).state.consumer_count
            ) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert count == 0
        finally:
            await client.close()


@pytest.mark.slow
async def test_a_long_wait_still_hears_the_job_end(nats_url: str) -> None:
    # The watch's consumer is kept while the wait runs, however much longer than WATCH_INACTIVE_S.
    async with job_stores(nats_url) as stores:
        client = await nats.connect(nats_url)
        try:
            jobs = JobStore(client.jetstream(), stores.kv)
            record = job_record(JobStatus.FETCHING)
            await put_job(stores, record)
            waiting = asyncio.create_task(jobs.wait_ready(record.job_id, 30))
            await asyncio.sleep(WATCH_INACTIVE_S + 2)
            ready = job_record(JobStatus.READY, job_id=record.job_id, snapshot="octo/demo@" + "a" * 40)
            await put_job(stores, ready)
            assert (await asyncio.wait_for(waiting, 10)).status == JobStatus.READY
        finally:
            await client.close()
