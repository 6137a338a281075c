"""ride_through: what it retries, what it raises at once, and that it never runs past its deadline.

The calls here raise the errors nats-py raises (its own classes, as a real client would); the
whole path against a real nats-server stopped and started is in tests/analyzer/test_nats_deadline.py.
"""

from __future__ import annotations

import asyncio
import time

import nats.errors
import pytest
from nats.js.errors import APIError, KeyNotFoundError, NoStreamResponseError, ServiceUnavailableError

from servicekit.nats_calls import NatsDeadline, ride_through


class Flaky:
    """Fails with `errors` in turn, then answers "ok"; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_not_ready_answers_are_tried_again_until_one_succeeds() -> None:
    call = Flaky(
        nats.errors.NoRespondersError(),
        NoStreamResponseError(),
        ServiceUnavailableError(
            code=503, err_code=10008, description="JetStream system temporarily unavailable"
        ),
        nats.errors.TimeoutError(),
        nats.errors.ConnectionReconnectingError(),
    )
    assert await ride_through(call, deadline_s=5, what="reading") == "ok"
    assert call.calls == 6


@pytest.mark.parametrize(
    "error",
    [
        KeyNotFoundError(),
        APIError(code=503, err_code=10077, description="maximum messages exceeded"),  # full: no election
        ValueError("a bug"),
    ],
)
async def test_other_answers_are_raised_at_once(error: BaseException) -> None:
    call = Flaky(error)
    with pytest.raises(type(error)):
        await ride_through(call, deadline_s=5, what="reading")
    assert call.calls == 1


async def test_past_the_deadline_it_raises_naming_the_call_and_the_setting() -> None:
    call = Flaky(*[nats.errors.NoRespondersError()] * 10_000)
    started = time.monotonic()
    with pytest.raises(NatsDeadline) as late:
        await ride_through(call, deadline_s=0.5, what="reading job x")
    assert time.monotonic() - started < 0.5 + 0.3
    assert str(late.value).startswith(
        "NATS did not answer reading job x within 0.5 s (NATS_REQUEST_DEADLINE_S, "
    )
    assert isinstance(late.value.last, nats.errors.NoRespondersError)
    assert call.calls >= 3  # tried again, with backoff, not once


async def test_an_attempt_that_hangs_is_cut_and_asked_again() -> None:
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(60)  # an answer lost with a dead node
        return "ok"

    started = time.monotonic()
    assert await ride_through(hangs_once, deadline_s=2, what="reading") == "ok"
    assert 0.5 <= time.monotonic() - started < 1.5  # cut at a quarter of the deadline, not at 60 s
    assert calls == 2


async def test_a_moving_attempt_is_not_cut_when_asked_so() -> None:
    async def slow() -> str:
        await asyncio.sleep(0.6)
        return "ok"

    assert await ride_through(slow, deadline_s=0.4, what="reading", cut_attempts=False) == "ok"
