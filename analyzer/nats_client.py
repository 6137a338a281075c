"""The analyzer's NATS connection: bounded patience at start-up, endless reconnects afterwards."""

from __future__ import annotations

import logging
import math

import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from jobs_contract.settings import nats_servers

logger = logging.getLogger("analyzer.nats")

RECONNECT_WAIT_S = 1.0


async def connect_nats(url: str, *, timeout_s: float, start_wait_s: float) -> NatsClient:
    """A connected client; tries for about `start_wait_s` seconds, then raises RuntimeError.

    `url` may list several servers of a cluster, comma-separated: the client connects to one,
    learns the others from it, and fails over to another when its server goes away.

    Once connected it reconnects for ever, and says so in the logs in one line per event
    (nats-py's default error callback logs a traceback per failed attempt, each second).
    """

    async def on_error(exc: Exception) -> None:
        logger.warning("NATS at %s: %s", url, exc or type(exc).__name__)

    connected: list[NatsClient] = []

    async def on_disconnected() -> None:
        if connected and (connected[0].is_draining or connected[0].is_closed):
            return  # our own shutdown
        logger.warning("NATS connection to %s lost; reconnecting", url)

    async def on_reconnected() -> None:
        logger.info("NATS reconnected to %s", url)

    try:
        client = await nats.connect(
            nats_servers(url),
            name="codereview-analyzer",
            connect_timeout=timeout_s,
            reconnect_time_wait=RECONNECT_WAIT_S,
            # nats-py counts the first connection's attempts against the same limit as reconnects.
            max_reconnect_attempts=max(1, math.ceil(start_wait_s / RECONNECT_WAIT_S)),
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise RuntimeError(f"NATS at {url} could not be reached within {start_wait_s:g} s: {exc!r}") from exc
    client.options["max_reconnect_attempts"] = -1
    connected.append(client)
    return client
