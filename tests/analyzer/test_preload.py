"""A completed-job event makes every analyzer load that snapshot before anyone asks."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import nats
import pytest

from analyzer.app import create_app
from analyzer.resources import SNAPSHOTS
from analyzer.settings import Settings
from analyzer.snapshots import SnapshotCache
from jobs_contract import EVENT_COMPLETED, JobEvent, JobStatus, event_subject
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.servers import serving

pytestmark = pytest.mark.nats


async def test_a_completed_job_is_preloaded(nats_url: str, gateway: FakeGateway, loads: list[str]) -> None:
    app = create_app(Settings(nats_url=nats_url, gateway_url=gateway.base_url))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"calc.py": "def add(a, b):\n    return a + b\n"})
    key = job.snapshot
    assert key is not None
    publisher = await nats.connect(nats_url)
    try:
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            cache: SnapshotCache = app.state[SNAPSHOTS]
            assert key not in cache
            # Garbage on the subject is ignored; the next event still counts.
            await publisher.publish(event_subject(job.job_id, EVENT_COMPLETED), b"not an event")
            event = JobEvent(job_id=job.job_id, event=EVENT_COMPLETED, status=JobStatus.READY, at=time.time())
            await publisher.publish(event_subject(job.job_id, EVENT_COMPLETED), msgspec.json.encode(event))
            for _ in range(200):
                if key in cache:
                    break
                await asyncio.sleep(0.05)
            assert key in cache
            response = await client.post(
                "/analyze/function", json={"job_id": job.job_id, "function_name": "calc.add"}
            )
            assert response.status_code == 200
    finally:
        await publisher.close()
    assert loads == [key]
