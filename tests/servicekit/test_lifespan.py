"""ResourceStack: what opened is closed in reverse order, and the first error is the one reported."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from servicekit.lifespan import ResourceStack, closing_async, closing_in_thread, started


class RefusedError(Exception):
    pass


def resource(
    name: str, events: list[str], *, fail_open: bool = False, fail_close: bool = False
) -> AbstractAsyncContextManager[str]:
    @asynccontextmanager
    async def opened() -> AsyncIterator[str]:
        if fail_open:
            raise RefusedError(f"{name} refused to open")
        events.append(f"open {name}")
        try:
            yield name
        finally:
            events.append(f"close {name}")
            if fail_close:
                raise RuntimeError(f"{name} failed to close")

    return opened()


async def test_a_failed_open_closes_what_opened_in_reverse_order_and_reports_its_own_error() -> None:
    events: list[str] = []

    async def start() -> None:
        async with ResourceStack() as stack:
            assert await stack.enter_async_context(resource("a", events)) == "a"
            await stack.enter_async_context(resource("b", events))
            await stack.enter_async_context(resource("c", events, fail_open=True))
            events.append("served")

    with pytest.raises(RefusedError, match="c refused to open") as raised:
        await start()
    assert events == ["open a", "open b", "close b", "close a"]
    assert raised.value.__context__ is None


async def test_an_error_while_closing_after_a_failed_start_is_logged_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    async def start() -> None:
        async with ResourceStack() as stack:
            await stack.enter_async_context(resource("a", events))
            await stack.enter_async_context(resource("b", events, fail_close=True))
            await stack.enter_async_context(resource("c", events, fail_open=True))

    with pytest.raises(RefusedError, match="c refused") as raised:
        await start()
    # b's failure to close did not stop a from closing, nor replace the error that stopped the start.
    assert events == ["open a", "open b", "close b", "close a"]
    assert raised.value.__context__ is None
    logged = [r for r in caplog.records if r.name == "servicekit.lifespan"]
    assert [r.getMessage() for r in logged] == [
        "while closing, after RefusedError: RuntimeError('b failed to close')"
    ]
    assert logged[0].levelno == logging.ERROR


async def test_with_no_error_before_the_first_error_while_closing_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    closed_last: list[str] = []

    async def callback() -> None:
        closed_last.append("callback")
        raise OSError("callback failed")

    async def serve() -> None:
        async with ResourceStack() as stack:
            stack.push_async_callback(callback)
            await stack.enter_async_context(resource("a", events, fail_close=True))
            await stack.enter_async_context(resource("b", events, fail_close=True))

    with pytest.raises(RuntimeError, match="b failed to close"):
        await serve()
    assert events == ["open a", "open b", "close b", "close a"]
    assert closed_last == ["callback"]
    logged = [r.getMessage() for r in caplog.records if r.name == "servicekit.lifespan"]
    assert logged == [
        "while closing, after RuntimeError: RuntimeError('a failed to close')",
        "while closing, after RuntimeError: OSError('callback failed')",
    ]


async def test_an_error_while_serving_is_reported_and_everything_closes() -> None:
    events: list[str] = []

    async def serve() -> None:
        async with ResourceStack() as stack:
            await stack.enter_async_context(resource("a", events, fail_close=True))
            raise KeyError("served badly")

    with pytest.raises(KeyError, match="served badly"):
        await serve()
    assert events == ["open a", "close a"]


class Pool:
    def __init__(self) -> None:
        self.closed_in: str | None = None

    def close(self) -> None:
        self.closed_in = threading.current_thread().name


class Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_closing_helpers_close_blocking_ones_in_a_thread_and_async_ones_awaited() -> None:
    pool, client = Pool(), Client()
    async with ResourceStack() as stack:
        assert await stack.enter_async_context(closing_in_thread(pool)) is pool
        assert await stack.enter_async_context(closing_async(client)) is client
        assert pool.closed_in is None
        assert not client.closed
    assert client.closed
    assert pool.closed_in is not None
    assert pool.closed_in != threading.current_thread().name


async def test_started_stops_after_the_block_and_never_what_did_not_start() -> None:
    events: list[str] = []

    async def start() -> None:
        events.append("start")

    async def refuse() -> None:
        raise RefusedError("no")

    async def stop() -> None:
        events.append("stop")

    async with ResourceStack() as stack:
        await stack.enter_async_context(started(start, stop))
        assert events == ["start"]
    assert events == ["start", "stop"]

    async def start_refused() -> None:
        async with ResourceStack() as stack:
            await stack.enter_async_context(started(refuse, stop))

    with pytest.raises(RefusedError):
        await start_refused()
    assert events == ["start", "stop"]
