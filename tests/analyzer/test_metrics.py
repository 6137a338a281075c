"""GET /metrics on a real analyzer against a real nats-server: jobs by status, requests per route."""

from __future__ import annotations

import httpx
import nats
import pytest

from analyzer.app import create_app
from jobs_contract import FETCH_STREAM
from tests.analyzer.helpers import settings_without_gateway
from tests.support.metrics import sample, scrape
from tests.support.servers import serving

pytestmark = pytest.mark.nats


async def test_a_started_job_is_counted_and_routes_are_labelled_by_template(nats_url: str) -> None:
    # The gateway is not used by these routes: an address where nothing listens.
    app = create_app(settings_without_gateway(nats_url))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = await scrape(client)
        started = await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/hello"})
        assert started.status_code == 200
        assert (await client.get(f"/analyze/jobs/{started.json()['job_id']}")).status_code == 200
        assert (await client.post("/analyze/start", json={"repo_url": "not a repository"})).status_code == 422
        after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("analyzer_jobs_total", status="queued") == 1
    assert grew("analyzer_jobs_total", status="failed") == 0
    start = {"app_name": "analyzer", "method": "POST", "path": "/analyze/start"}
    assert grew("codereview_requests_total", status_code="200", **start) == 1
    assert grew("codereview_requests_total", status_code="422", **start) == 1
    # The job id is not a label value: every job's reads count under the one route template.
    job_route = {"app_name": "analyzer", "method": "GET", "status_code": "200"}
    assert grew("codereview_requests_total", path="/analyze/jobs/{job_id}", **job_route) == 1
    assert started.json()["job_id"] not in after


async def test_metrics_off_serves_no_metrics_page(nats_url: str) -> None:
    app = create_app(settings_without_gateway(nats_url, metrics_enabled=False))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/metrics")).status_code == 404


@pytest.mark.slow
async def test_a_job_whose_fetch_request_cannot_be_queued_is_counted_failed(nats_url: str) -> None:
    app = create_app(settings_without_gateway(nats_url))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = await scrape(client)
        # The work queue disappears under the running analyzer: the job record is written, the
        # request has nowhere to go.
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().delete_stream(FETCH_STREAM)
        finally:
            await nc.close()
        response = await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/hello"})
        assert response.status_code == 503
        after = await scrape(client)
    for status, moved in (("failed", 1), ("queued", 0)):
        assert (
            sample(after, "analyzer_jobs_total", status=status)
            - sample(before, "analyzer_jobs_total", status=status)
            == moved
        )
