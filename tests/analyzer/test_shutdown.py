"""SIGTERM on an analyzer process: no new connections, the review in flight gets its answer, exit 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from jobs_contract import JobStatus
from tests.analyzer.stores import job_record, job_stores, put_job, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.servers import refuses_new_connections, service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]

SHUTDOWN_TIMEOUT_S = 20


async def test_a_review_in_flight_is_answered_and_the_process_exits_0(
    nats_url: str, gateway: FakeGateway, service_logs: Path
) -> None:
    gateway.delay = 4.0  # the signal arrives while the analyzer waits for the gateway
    gateway.suggestions = ["Handle an empty list."]
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"stats.py": "def mean(xs):\n    return sum(xs) / len(xs)\n"})
    env = {
        "NATS_URL": nats_url,
        "GATEWAY_URL": gateway.base_url,
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    }
    with service_process("analyzer", env, service_logs, port_variable="ANALYZER_PORT") as analyzer:
        async with httpx.AsyncClient(base_url=analyzer.url, timeout=60) as client:
            review = asyncio.create_task(
                client.post("/analyze/function", json={"job_id": job.job_id, "function_name": "stats.mean"})
            )
            while not gateway.requests:
                await asyncio.sleep(0.02)
            stopped = asyncio.create_task(asyncio.to_thread(analyzer.terminate, SHUTDOWN_TIMEOUT_S + 10))
            refused = await refuses_new_connections(analyzer.url)
            response = await review
            code = await stopped
        log = analyzer.log()
    assert refused, log
    assert response.status_code == 200, response.text
    assert response.json() == {"suggestions": ["Handle an empty list."]}
    assert code == 0, log
    assert "Traceback" not in log


async def test_a_request_waiting_for_a_job_gets_503_at_once_and_the_process_exits_0(
    nats_url: str, gateway: FakeGateway, service_logs: Path
) -> None:
    async with job_stores(nats_url) as stores:
        fetching = job_record(JobStatus.FETCHING)
        await put_job(stores, fetching)  # no fetcher: it would stay fetching for the whole wait
    env = {
        "NATS_URL": nats_url,
        "GATEWAY_URL": gateway.base_url,
        "ANALYZER_WAIT_TIMEOUT_S": "600",
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    }
    with service_process("analyzer", env, service_logs, port_variable="ANALYZER_PORT") as analyzer:
        async with httpx.AsyncClient(base_url=analyzer.url, timeout=60) as client:
            review = asyncio.create_task(
                client.post("/analyze/function", json={"job_id": fetching.job_id, "function_name": "m.f"})
            )
            await asyncio.sleep(1.0)  # it is waiting for the job now
            assert not review.done()
            signalled = time.monotonic()
            stopped = asyncio.create_task(asyncio.to_thread(analyzer.terminate, SHUTDOWN_TIMEOUT_S + 10))
            response = await review
            answered_within = time.monotonic() - signalled
            code = await stopped
        log = analyzer.log()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["detail"].startswith(
        f"the analyzer is shutting down: job {fetching.job_id} is still fetching"
    )
    assert body["extra"] == {"job_id": fetching.job_id, "status": "fetching"}
    # Answered by the signal, not by the bound (which would cut it without an answer).
    assert answered_within < SHUTDOWN_TIMEOUT_S, answered_within
    assert code == 0, log
    assert gateway.requests == []
