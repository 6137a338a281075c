"""GET /metrics on the fetcher's health port, served as in production, against a real nats-server."""

from __future__ import annotations

import asyncio

import httpx

from fetcher.app import create_app
from fetcher.settings import Settings
from jobs_contract import JobStatus
from tests.fetcher.helpers import Analyzer
from tests.support.fake_github import FakeGitHub
from tests.support.metrics import sample, scrape
from tests.support.servers import serving

FILES: dict[str, str | bytes] = {
    "pkg/__init__.py": "",
    "pkg/core.py": "def add(a, b):\n    return a + b\n",
    "README.md": "# demo\n",
}


async def test_jobs_fetch_time_bytes_and_messages_show_on_the_health_port(
    settings: Settings, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    app = create_app(settings, configure_logging=False)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = await scrape(client)
        ready = await jobs.wait(await jobs.submit("octo", "demo"))
        missing = await jobs.wait(await jobs.submit("octo", "no-such-repo"))
        after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert ready.status is JobStatus.READY, ready.error
    assert missing.status is JobStatus.FAILED
    assert grew("fetcher_jobs_total", outcome="ready") == 1
    assert grew("fetcher_jobs_total", outcome="failed") == 1
    assert grew("fetcher_fetch_duration_seconds_count", outcome="ready") == 1
    assert grew("fetcher_fetch_duration_seconds_sum", outcome="ready") > 0
    # The snapshot keeps the Python files only; the download is the whole gzipped tarball.
    assert grew("fetcher_snapshot_bytes_total") == ready.bytes == len(FILES["pkg/core.py"])
    assert grew("fetcher_downloaded_bytes_total") > 0
    # FastStream's own middleware counts the fetch requests it consumed.
    assert grew("faststream_received_messages_total", app_name="fetcher") >= 2


async def test_metrics_off_serves_no_metrics_page(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": False}), configure_logging=False)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/health")).status_code == 200


async def test_a_malformed_request_is_counted_as_invalid(settings: Settings, jobs: Analyzer) -> None:
    app = create_app(settings, configure_logging=False)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = sample(await scrape(client), "fetcher_jobs_total", outcome="invalid")
        await jobs.publish_raw(b"{not json", msg_id="malformed-metrics-test")
        async with asyncio.timeout(30):  # until the fetcher has taken it, not a timing assertion
            while sample(await scrape(client), "fetcher_jobs_total", outcome="invalid") == before:
                await asyncio.sleep(0.05)
        after = await scrape(client)
    assert sample(after, "fetcher_jobs_total", outcome="invalid") - before == 1
