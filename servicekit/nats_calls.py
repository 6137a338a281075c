"""JetStream calls on a request's path: ride through a leader election, never past a deadline.

When a NATS node dies, the streams it led elect a new leader among the others: for a few seconds
JetStream answers "no responders", "503 JetStream unavailable" or nothing at all. A request that
arrives then should wait for the election, not fail; and no request should wait long for a NATS
that is gone. `ride_through` tries a call again on those answers, with capped jittered backoff,
until NATS_REQUEST_DEADLINE_S has passed since the request asked; then it raises NatsDeadline,
which the service answers as 503 with Retry-After.

Not stamina: its timeout stops scheduling attempts but leaves the one in flight to nats-py's own
timeout (5 s), so a request could wait up to deadline + 5 s; here each attempt is cut at the
deadline, and the analyzer needs no new dependency for a loop of ten lines.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js.errors import APIError

from servicekit.nats_connect import NOT_READY

T = TypeVar("T")

# The default deadline (the analyzer's NATS_REQUEST_DEADLINE_S, the fetcher's job reads and
# writes): nats-server's followers wait 4-9 s (random) for a lost leader before one campaigns
# (server/raft.go), so 20 s covers a whole election round and most of a second.
ELECTION_DEADLINE_S = 20.0

# Backoff between attempts: full jitter up to a ceiling that doubles from the first to the cap.
# 50 ms first (a "no responders" right after a kill is often answered by the next attempt), at
# most 1 s apart, so the request learns of the new leader within a second of its election.
_FIRST_WAIT_S = 0.05
_MAX_WAIT_S = 1.0
# The longest one attempt may take, as a share of the deadline (see `ride_through`).
_ATTEMPT_SHARE = 0.25
# Besides NOT_READY: a publish that no stream leader takes (nats-py's NoStreamResponseError, the
# server's 503 "no responders" to a JetStream publish), and calls nats-py refuses at once while
# the client reconnects to another node.
RETRIED: tuple[type[BaseException], ...] = (
    *NOT_READY,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
)


# JetStream answers these with status 503 as well, but they are no election: a stream at its max
# messages or max bytes (discard "new") has no room until something leaves, so they are raised
# at once for the caller to word (10077: "maximum messages/bytes exceeded").
NOT_PASSING = frozenset({10077})


class NatsDeadline(TimeoutError):  # noqa: N818 - named for what the caller meets
    """NATS kept answering "not ready" (or nothing) until the deadline; `last` is its last answer."""

    def __init__(self, what: str, deadline_s: float, attempts: int, last: BaseException) -> None:
        super().__init__(
            f"NATS did not answer {what} within {deadline_s:g} s (NATS_REQUEST_DEADLINE_S, "
            f"{attempts} attempts): {last!r}"
        )
        self.last = last


async def ride_through(
    call: Callable[[], Awaitable[T]],
    *,
    deadline_s: float,
    what: str,
    cut_attempts: bool = True,
    retry_on: tuple[type[BaseException], ...] = RETRIED,
) -> T:
    """`call()`, tried again while NATS answers one of `retry_on` (not ready, no responders, a
    timeout), until `deadline_s` seconds have passed; `what` names the call in the error.

    With `cut_attempts` (the default) each attempt gets at most a quarter of the deadline (2.5 s
    of the default 10 s: a request whose answer was lost with a dead node is asked again, not
    waited for until nats-py's own timeout), and none runs past the deadline, so the whole never
    takes longer than `deadline_s` (plus a scheduling tick); without it (a large
    read that is moving, bounded by its own stall timeout) only new attempts stop at the deadline.
    Raises NatsDeadline (a TimeoutError) when the deadline passes; any other error at once.
    Only for calls that are safe to repeat: reads, and writes NATS deduplicates (Nats-Msg-Id) or
    whose second attempt the caller recognises (a create that finds its own first write).
    """
    deadline = time.monotonic() + deadline_s
    ceiling = _FIRST_WAIT_S
    attempts = 0
    while True:
        attempts += 1
        left = deadline - time.monotonic()
        try:
            if cut_attempts:
                async with asyncio.timeout(max(min(left, deadline_s * _ATTEMPT_SHARE), 0.0)):
                    return await call()
            return await call()
        except retry_on as exc:
            if isinstance(exc, APIError) and exc.err_code in NOT_PASSING:
                raise
            last: BaseException = exc
        left = deadline - time.monotonic()
        if left <= 0:
            raise NatsDeadline(what, deadline_s, attempts, last) from last
        await asyncio.sleep(min(random.uniform(0, ceiling), left))  # noqa: S311 - jitter, not a secret
        ceiling = min(ceiling * 2, _MAX_WAIT_S)
