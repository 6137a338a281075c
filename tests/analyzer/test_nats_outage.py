"""NATS going away: /health says so (503) and requests get a 503 naming NATS, never a 500."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from analyzer.app import create_app
from analyzer.settings import Settings
from tests.support.fake_gateway import FakeGateway
from tests.support.nats import running_nats_server
from tests.support.ports import free_port
from tests.support.servers import service_process, serving

pytestmark = pytest.mark.nats


@pytest.mark.slow
async def test_nats_down_is_503_and_health_says_so(tmp_path: Path, gateway: FakeGateway) -> None:
    with ExitStack() as nats_server:
        nats_url = nats_server.enter_context(running_nats_server(tmp_path / "jetstream"))
        settings = Settings(
            nats_url=nats_url, gateway_url=gateway.base_url, nats_timeout_s=1.0, nats_request_deadline_s=1.0
        )
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            healthy = await client.get("/health")
            assert (healthy.status_code, healthy.json()) == (200, {"status": "ok", "nats": "connected"})

            nats_server.close()  # the server stops; the analyzer keeps trying to reconnect
            for _ in range(200):
                health = await client.get("/health")
                if health.status_code != 200:
                    break
                await asyncio.sleep(0.05)
            assert (health.status_code, health.json()) == (
                503,
                {"status": "unavailable", "nats": "disconnected"},
            )

            started = await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/demo"})
            assert started.status_code == 503
            assert started.json()["detail"].startswith("could not create the job record on NATS")
            job = await client.get("/analyze/jobs/0123abcd")
            assert job.status_code == 503
            assert job.json()["detail"].startswith("could not read job '0123abcd' from NATS")
            analyzed = await client.post(
                "/analyze/function", json={"job_id": "0123abcd", "function_name": "m.f"}
            )
            assert analyzed.status_code == 503
    assert gateway.requests == []


def test_the_service_gives_up_at_start_when_nats_is_unreachable(tmp_path: Path) -> None:
    nats_url = f"nats://127.0.0.1:{free_port()}"
    env = {"NATS_URL": nats_url, "NATS_START_WAIT_S": "1"}
    with service_process(
        "analyzer", env, tmp_path, port_variable="ANALYZER_PORT", health_path=None
    ) as service:
        code = service.process.wait(timeout=60)
    assert code != 0
    assert f"NATS at {nats_url} could not be reached within 1 s" in service.log()
    # One line per failed attempt, not nats-py's default traceback each time.
    assert "nats: encountered error" not in service.log()
    assert f"WARNING analyzer.nats [request=-] NATS at {nats_url}: " in service.log()
