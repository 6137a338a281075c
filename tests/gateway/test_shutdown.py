"""SIGTERM on a gateway process: no new connections, the request in flight gets its answer, exit 0."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest

from tests.support.fake_llm import FakeLLM, review_reply
from tests.support.servers import refuses_new_connections, service_process

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT_S = 20


async def test_a_review_in_flight_is_answered_and_the_process_exits_0(
    openai_fake: FakeLLM, service_logs: Path
) -> None:
    # The provider takes 4 s: the signal arrives while the gateway waits for it.
    openai_fake.script("/chat/completions", dataclasses.replace(review_reply("Check x for None."), delay=4.0))
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-shutdown",
        "OPENAI_BASE_URL": f"{openai_fake.url}/v1",
        "LLM_MAX_RETRIES": "0",
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    }
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            review = asyncio.create_task(
                client.post("/analyze", json={"function_code": "def name(user):\n    return user.name\n"})
            )
            while not openai_fake.sent("/chat/completions"):
                await asyncio.sleep(0.02)
            stopped = asyncio.create_task(asyncio.to_thread(gateway.terminate, SHUTDOWN_TIMEOUT_S + 10))
            # New connections are refused from the signal on (the in-flight one is still open).
            refused = await refuses_new_connections(gateway.url)
            response = await review
            code = await stopped
        log = gateway.log()
    assert refused, log
    assert response.status_code == 200, response.text
    assert "Check x for None." in response.json()["suggestions"]
    assert code == 0, log
    assert "Traceback" not in log
