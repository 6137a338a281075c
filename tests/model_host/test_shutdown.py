"""SIGTERM on model_host: the queued request gets 503 at once, the running generation finishes,
and the process exits 0 (the real bundled model, as a process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import service_process

pytestmark = [pytest.mark.model, pytest.mark.slow]

# Generous: the running generation must fit in it on a loaded 2-core machine.
SHUTDOWN_TIMEOUT_S = 60
LONG = {
    "model": "smollm2",
    "messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
    "max_tokens": 300,
    "temperature": 0,
}


async def queue_depth(http: httpx.AsyncClient) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("model_host_queue_depth "):
            return float(line.split()[1])
    raise AssertionError("no model_host_queue_depth on /metrics")


async def test_the_queue_gets_503_the_running_one_its_answer_and_the_process_exits_0(
    service_logs: Path,
) -> None:
    env = {
        "MODEL_NAME": "smollm2",
        "MODEL_CONTEXT_SIZE": "1024",
        "MODEL_THREADS": "1",
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    }
    with service_process("model_host", env, service_logs, port_variable="MODEL_HOST_PORT") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=120) as http:
            running = asyncio.create_task(http.post("/v1/chat/completions", json=LONG))
            await asyncio.sleep(0.5)  # its turn comes first
            queued = asyncio.create_task(http.post("/v1/chat/completions", json=LONG))
            deadline = time.monotonic() + 60
            while await queue_depth(http) < 1:
                assert time.monotonic() < deadline, "no request ever queued"
                assert not running.done(), "the first request ended before the second queued"
                await asyncio.sleep(0.05)
            stopped = asyncio.create_task(asyncio.to_thread(service.terminate, SHUTDOWN_TIMEOUT_S + 15))
            refused = await queued
            running_done_when_refused = running.done()
            answered = await running
            code = await stopped
        log = service.log()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["retry-after"] == "2"
    assert not running_done_when_refused  # refused at once, not after the running one
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"]
    assert code == 0, log
    assert "shutting down: no new generations; 1 waiting request(s) answered 503" in log
