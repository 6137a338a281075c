"""Reaching NATS: bounded patience at start-up (NATS_START_WAIT_S), endless reconnects afterwards.

At start a service may come up before NATS does, or while a cluster still elects its JetStream
leader: it keeps trying, one log line per attempt and no traceback, for NATS_START_WAIT_S, then
gives up with one line that names the URL and the variable (NatsUnreachable). Once connected,
the client reconnects for ever and says so in one line per event (nats-py's default error
callback would log a traceback per failed attempt, each second).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js.errors import ServiceUnavailableError

T = TypeVar("T")

RECONNECT_WAIT_S = 1.0
# Backoff between JetStream attempts while it is not ready: from the first to the last.
_READY_WAIT_FIRST_S = 0.25
_READY_WAIT_MAX_S = 4.0
# What JetStream answers while it cannot serve yet: no answer in time, nobody listening to its
# API (the server is starting), or "temporarily unavailable" (no meta leader elected yet).
NOT_READY: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    ServiceUnavailableError,
    TimeoutError,
)


class NatsUnreachable(RuntimeError):  # noqa: N818 - the name says what the operator meets
    """NATS, or its JetStream, did not answer within NATS_START_WAIT_S."""


def nats_servers(url: str) -> list[str]:
    """NATS_URL's servers: one URL, or several separated by commas (a cluster, for failover)."""
    return [server.strip() for server in url.split(",") if server.strip()]


def connect_options(
    url: str, *, name: str, timeout_s: float, start_wait_s: float, log: logging.Logger
) -> tuple[dict[str, Any], Callable[[NatsClient], None]]:
    """`nats.connect` keyword arguments that try for about `start_wait_s`, and the function to call
    with the client once connected (it turns the bounded start into endless reconnects).

    For clients something else connects (FastStream's broker takes these same arguments).
    """
    connected: list[NatsClient] = []

    async def on_error(exc: Exception) -> None:
        log.warning("NATS at %s: %s", url, exc or type(exc).__name__)

    async def on_disconnected() -> None:
        if not connected or connected[0].is_draining or connected[0].is_closed:
            return  # still starting (on_error said why), or our own shutdown
        log.warning("NATS connection to %s lost; reconnecting", url)

    async def on_reconnected() -> None:
        log.info("NATS reconnected to %s", url)

    def on_connected(client: NatsClient) -> None:
        client.options["max_reconnect_attempts"] = -1
        connected.append(client)

    options: dict[str, Any] = {
        "servers": nats_servers(url),
        "name": name,
        "connect_timeout": timeout_s,
        "reconnect_time_wait": RECONNECT_WAIT_S,
        # nats-py counts the first connection's attempts against the same limit as reconnects.
        "max_reconnect_attempts": max(1, math.ceil(start_wait_s / RECONNECT_WAIT_S)),
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
    }
    return options, on_connected


def unreachable(url: str, start_wait_s: float, exc: BaseException) -> NatsUnreachable:
    return NatsUnreachable(
        f"NATS at {url} could not be reached within {start_wait_s:g} s (NATS_START_WAIT_S): {exc!r}"
    )


async def connect_nats(
    url: str, *, name: str, timeout_s: float, start_wait_s: float, log: logging.Logger
) -> NatsClient:
    """A connected client; tries for about `start_wait_s` seconds, then raises NatsUnreachable.

    `url` may list several servers of a cluster, comma-separated: the client connects to one,
    learns the others from it, and fails over to another when its server goes away.
    """
    options, on_connected = connect_options(
        url, name=name, timeout_s=timeout_s, start_wait_s=start_wait_s, log=log
    )
    try:
        client = await nats.connect(**options)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise unreachable(url, start_wait_s, exc) from exc
    on_connected(client)
    return client


async def when_jetstream_ready(
    setup: Callable[[], Awaitable[T]],
    *,
    url: str,
    start_wait_s: float,
    log: logging.Logger,
    waiting_for: tuple[type[Exception], ...] = (),
) -> T:
    """`setup()` (creating streams and buckets), tried again with backoff while JetStream answers
    that it is not ready, or `setup` raises one of `waiting_for` (a stream another service
    creates), for up to `start_wait_s`; then NatsUnreachable, or that last `waiting_for` error
    itself (its message says what is missing). Any other error (a refusal) is raised at once."""
    deadline = time.monotonic() + start_wait_s
    wait = _READY_WAIT_FIRST_S
    attempt = 1
    while True:
        try:
            return await setup()
        except waiting_for as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning("waiting for JetStream at %s (attempt %d): %s", url, attempt, exc)
            await asyncio.sleep(min(wait, left))
            wait = min(wait * 2, _READY_WAIT_MAX_S)
            attempt += 1
        except NOT_READY as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NatsUnreachable(
                    f"JetStream at {url} was not ready within {start_wait_s:g} s (NATS_START_WAIT_S): {exc!r}"
                ) from exc
            log.warning(
                "JetStream at %s not ready (attempt %d): %s; trying again in %.2g s",
                url,
                attempt,
                exc or type(exc).__name__,
                min(wait, left),
            )
            await asyncio.sleep(min(wait, left))
            wait = min(wait * 2, _READY_WAIT_MAX_S)
            attempt += 1
