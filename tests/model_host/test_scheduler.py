"""The generation slot: one at a time, FIFO, bounded queue, cancelling never overlaps two generations."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from model_host.errors import QueueFullError, ShuttingDownError
from model_host.scheduler import GenerationSlot
from tests.support.waiting import until


@pytest.fixture
async def slot() -> AsyncIterator[GenerationSlot]:
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        yield GenerationSlot(executor, queue_size=2, retry_after_s=3)
    finally:
        executor.shutdown(wait=True)


def held_work(name: str, log: list[str], release: threading.Event) -> Callable[[threading.Event], str]:
    def work(cancelled: threading.Event) -> str:
        log.append(f"{name} started")
        release.wait(30)
        log.append(f"{name} done")
        return name

    return work


async def test_requests_run_one_at_a_time_in_arrival_order(slot: GenerationSlot) -> None:
    log: list[str] = []
    gates = {name: threading.Event() for name in "ABC"}
    first = asyncio.create_task(slot.run(held_work("A", log, gates["A"])))
    await until(lambda: log == ["A started"])
    queued = [asyncio.create_task(slot.run(held_work(name, log, gates[name]))) for name in "BC"]
    await until(lambda: slot.waiting == 2)
    for gate in reversed(gates.values()):  # releasing C first must not let it overtake B
        gate.set()
    assert await asyncio.gather(first, *queued) == ["A", "B", "C"]
    assert log == ["A started", "A done", "B started", "B done", "C started", "C done"]


async def test_a_full_queue_refuses_with_retry_after(slot: GenerationSlot) -> None:
    log: list[str] = []
    release = threading.Event()
    tasks = [asyncio.create_task(slot.run(held_work(name, log, release))) for name in "ABC"]
    await until(lambda: slot.busy and slot.waiting == 2)
    with pytest.raises(QueueFullError) as refused:
        await slot.run(held_work("D", log, release))
    assert refused.value.status_code == 503
    assert refused.value.headers() == {"Retry-After": "3"}
    assert "MODEL_QUEUE_SIZE=2" in refused.value.message
    release.set()
    assert await asyncio.gather(*tasks) == ["A", "B", "C"]
    assert "D started" not in log


async def test_a_waiting_request_that_is_cancelled_leaves_the_queue(slot: GenerationSlot) -> None:
    log: list[str] = []
    release = threading.Event()
    running = asyncio.create_task(slot.run(held_work("A", log, release)))
    await until(lambda: slot.busy)
    gone = asyncio.create_task(slot.run(held_work("B", log, release)))
    await until(lambda: slot.waiting == 1)
    gone.cancel()
    await until(lambda: slot.waiting == 0)
    later = asyncio.create_task(slot.run(held_work("C", log, release)))
    release.set()
    assert list(await asyncio.gather(running, later)) == ["A", "C"]
    assert gone.cancelled()
    assert "B started" not in log


async def test_a_cancelled_generation_keeps_the_slot_until_its_thread_has_stopped(
    slot: GenerationSlot,
) -> None:
    log: list[str] = []
    may_exit = threading.Event()

    def endless(cancelled: threading.Event) -> str:
        log.append("A started")
        while not cancelled.wait(0.01):
            pass
        log.append("A saw cancel")
        may_exit.wait(30)
        log.append("A exited")
        return "A"

    running = asyncio.create_task(slot.run(endless))
    await until(lambda: log == ["A started"])
    release_b = threading.Event()
    follower = asyncio.create_task(slot.run(held_work("B", log, release_b)))
    await until(lambda: slot.waiting == 1)
    running.cancel()
    await until(lambda: "A saw cancel" in log)
    await asyncio.sleep(0.05)  # give B every chance to (wrongly) start while A's thread still runs
    assert "B started" not in log
    may_exit.set()
    with pytest.raises(asyncio.CancelledError):
        await running
    await until(lambda: "B started" in log)
    assert log.index("A exited") < log.index("B started")
    release_b.set()
    assert await follower == "B"


async def test_shut_answers_the_queue_at_once_and_lets_the_running_one_finish(slot: GenerationSlot) -> None:
    log: list[str] = []
    release = threading.Event()
    running = asyncio.create_task(slot.run(held_work("A", log, release)))
    await until(lambda: slot.busy)
    queued = [asyncio.create_task(slot.run(held_work(name, log, release))) for name in "BC"]
    await until(lambda: slot.waiting == 2)
    slot.shut()
    for task in queued:  # answered while A still runs
        with pytest.raises(ShuttingDownError) as refused:
            await task
        assert refused.value.status_code == 503
        assert refused.value.headers() == {"Retry-After": "3"}
    assert not running.done()
    with pytest.raises(ShuttingDownError):  # and a request arriving now
        await slot.run(held_work("D", log, release))
    release.set()
    assert await running == "A"
    assert log == ["A started", "A done"]
    assert not slot.busy
