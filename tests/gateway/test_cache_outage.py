"""The review cache while NATS is gone: reviews skip it at once, one log line says so, and it comes back.

A real nats-server that the test stops and starts again on the same port and store folder.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from devstack.runner import nats_server_binary
from gateway.cache import MAX_PENDING_WRITES, Breaker, CachedReview, NatsCache
from tests.gateway.conftest import gateway_client, local_settings
from tests.support.fake_llm import FakeLLM
from tests.support.nats import running_nats_server
from tests.support.ports import free_port
from tests.support.servers import stop_process

# Reviews timed on each gateway: the median of an odd count is one review's time.
REVIEWS = 15
OFF = "review cache off"
ON = "review cache on again"


def _code(tag: str) -> str:
    return f"def add_{tag}(a, b):\n    return a + b\n"


async def _review_time(client: httpx.AsyncClient, code: str) -> float:
    started = time.perf_counter()
    response = await client.post("/analyze", json={"function_code": code})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def _off(breaker: Breaker) -> bool:
    # A call each time: mypy would take an asserted property for a constant.
    return breaker.is_open


def _lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.cache" and r.getMessage().startswith(start)
    ]


@pytest.mark.nats
async def test_a_review_with_nats_down_is_as_quick_as_with_nats_up_and_the_cache_comes_back(
    local_fake: FakeLLM, nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two gateways: one whose NATS stays up, one whose NATS the test stops and starts again. Their
    # reviews alternate, so a machine that gets busier meanwhile slows both alike.
    port, store = free_port(), tmp_path / "jetstream"
    bucket = f"reviews_{uuid.uuid4().hex[:8]}"
    up_settings = local_settings(local_fake, nats_url=nats_url, review_cache_bucket=bucket)
    down_settings = local_settings(
        local_fake, nats_url=f"nats://127.0.0.1:{port}", review_cache_bucket=bucket, review_cache_ttl=600
    )
    caplog.set_level(logging.INFO, logger="gateway")
    with ExitStack() as first_server, ExitStack() as second_server:
        first_server.enter_context(running_nats_server(store, port=port))
        async with gateway_client(up_settings) as up_client, gateway_client(down_settings) as down_client:
            first_server.close()  # nats-server stops; the gateway keeps answering
            up, down = [], []
            for index in range(REVIEWS + 1):
                up_time = await _review_time(up_client, _code(f"up_{index}"))
                down_time = await _review_time(down_client, _code(f"down_{index}"))
                if index:  # the first of each starts ruff for the first time
                    up.append(up_time)
                    down.append(down_time)
            assert len(_lines(caplog, OFF)) == 1, caplog.messages
            assert _lines(caplog, ON) == []

            second_server.enter_context(running_nats_server(store, port=port))
            # The gateway reconnects (about 1 s) and its next cache call after the wait finds
            # NATS: a review asked twice is then answered from the cache.
            deadline = time.monotonic() + 30
            hit = False
            while not hit and time.monotonic() < deadline:
                code = _code(f"back_{uuid.uuid4().hex[:6]}")
                await down_client.post("/analyze", json={"function_code": code})
                asked = len(local_fake.sent("/chat/completions"))
                again = await down_client.post("/analyze", json={"function_code": code})
                assert again.status_code == 200, again.text
                hit = len(local_fake.sent("/chat/completions")) == asked
            assert hit, "the cache was not used again after NATS came back"
            assert len(_lines(caplog, ON)) == 1, caplog.messages
    assert len(_lines(caplog, OFF)) == 1, caplog.messages
    up_median, down_median = statistics.median(up), statistics.median(down)
    print(f"/analyze median: NATS up {up_median * 1000:.1f} ms, NATS down {down_median * 1000:.1f} ms")
    assert down_median <= 2 * up_median, (up, down)


@contextmanager
def _pausable_nats_server(store_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A nats-server whose process the test can SIGSTOP: it keeps the connection and answers nothing."""
    port = free_port()
    process = subprocess.Popen(
        [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}", process
    finally:
        process.send_signal(signal.SIGCONT)
        stop_process(process)


@pytest.mark.alone
@pytest.mark.nats
async def test_a_nats_that_answers_nothing_costs_one_deadline_and_a_flood_of_writes_is_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    review = CachedReview(suggestions=["Name it."], provider="local", model="m")
    caplog.set_level(logging.INFO, logger="gateway.cache")
    with _pausable_nats_server(tmp_path / "jetstream") as (url, process):
        cache = NatsCache(url, f"reviews_{uuid.uuid4().hex[:8]}", 60, timeout_s=0.05, retry_after_s=0.2)
        await cache.open()
        try:
            await cache.put("kept", review)
            assert await cache.get("kept") == review
            process.send_signal(signal.SIGSTOP)  # connected, and silent
            try:
                for index in range(10_000):
                    cache.put_later(f"flood{index}", review)
                assert cache.pending_writes == MAX_PENDING_WRITES
                started = time.perf_counter()
                while cache.pending_writes:
                    await asyncio.sleep(0.01)
                # Each write waits REVIEW_CACHE_TIMEOUT_S, not nats-py's 5 s; they wait side by side.
                assert time.perf_counter() - started < 2.0
                assert _off(cache.breaker)
                assert await cache.get("kept") is None  # skipped: no call while the cache is off
                await asyncio.sleep(0.3)
                assert await cache.get("kept") is None  # the probe: one deadline, silently off again
                assert _off(cache.breaker)
            finally:
                process.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.3)
            assert await cache.get("kept") == review  # the next probe finds NATS: on again
            assert not _off(cache.breaker)
        finally:
            await cache.close()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "gateway.cache"]
    assert [m for m in messages if OFF in m[1] or ON in m[1]] == [
        (
            "WARNING",
            "review cache off: NATS did not answer a write within 0.05 s (REVIEW_CACHE_TIMEOUT_S); "
            "reviews go without it, trying it again every 0.2 s",
        ),
        ("INFO", messages[-1][1]),
    ]
    assert messages[-1][1].startswith("review cache on again: NATS answered after ")
    # Nothing else was said per failed call.
    assert [m for m in messages if "failed" in m[1]] == []


def test_the_breaker_says_once_when_it_opens_and_once_when_it_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    breaker = Breaker(retry_after_s=1.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="gateway.cache")
    first, second = breaker.admit(), breaker.admit()
    assert first == second == "call"
    breaker.failed("call", "NATS did not answer a read")
    breaker.failed("call", "NATS did not answer a write")  # at the same time: already said
    assert breaker.admit() is None
    now[0] = 101.0
    assert breaker.admit() == "probe"
    assert breaker.admit() is None  # one probe at a time
    breaker.failed("probe", "still nothing")  # off for another second, silently
    now[0] = 101.5
    assert breaker.admit() is None
    now[0] = 102.0
    assert breaker.admit() == "probe"
    breaker.abandoned("probe")  # cancelled: the slot is free again
    assert breaker.admit() == "probe"
    breaker.succeeded("call")  # a call admitted before it opened says nothing about NATS now
    assert _off(breaker)
    breaker.succeeded("probe")
    assert not _off(breaker)
    assert breaker.admit() == "call"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "review cache off: NATS did not answer a read; reviews go without it, trying it again every 1 s",
        ),
        ("INFO", "review cache on again: NATS answered after 2.0 s off (3 cache calls skipped)"),
    ]
