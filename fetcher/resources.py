"""What the fetcher's handlers use, opened in its lifespan and closed whatever happens.

`lifespan(broker, settings, on_connected)` opens each resource into one ResourceStack
(servicekit.lifespan), one line each: the broker's NATS connection, then (once JetStream answers,
with the streams, buckets and the fetch consumer set up) the GitHub client, and the fetcher and
its job slots in the broker's context, where the handlers (fetcher.subscribers) get them. If one
fails to open (JetStream never ready, say), those already open are closed in reverse order and
that failure is the error reported. The hooks around it: `stop_jobs` hands every job back before
the broker stops, `ready` says the fetcher is consuming.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from faststream.nats import NatsBroker
from faststream.nats.subscriber import PullStreamSubscriber
from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionClosedError, ConnectionReconnectingError
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from fetcher.archive import INFLATE_ENGINE
from fetcher.github import GitHubClient, GitHubConfig
from fetcher.settings import Settings
from fetcher.subscribers import FETCHER_KEY, SLOTS_KEY, consumer_config
from fetcher.worker import Fetcher, JobSlots
from jobs_contract import FETCH_DURABLE, FETCH_STREAM, JobStores, NotProvisioned, await_jetstream
from servicekit.lifespan import ResourceStack
from servicekit.nats_connect import unreachable, when_jetstream_ready

log = logging.getLogger("fetcher")
NATS_LOG = logging.getLogger("fetcher.nats")


def lifespan(
    broker: NatsBroker,
    settings: Settings,
    on_connected: Callable[[NatsClient], None],
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the broker's connection, the stores, the GitHub client, the fetcher.

    Its start raises NatsUnreachable when NATS, or its JetStream, does not answer within
    NATS_START_WAIT_S.
    """

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        async with ResourceStack() as stack:
            connection = await stack.enter_async_context(broker_connection(broker, settings, on_connected))
            stores = await jetstream_ready(connection.jetstream(), settings)
            github = await stack.enter_async_context(GitHubClient(github_config(settings)))
            fetcher = Fetcher(settings, github, stores, connection)
            await stack.enter_async_context(in_context(broker, FETCHER_KEY, fetcher))
            await stack.enter_async_context(
                in_context(broker, SLOTS_KEY, JobSlots(settings.fetcher_concurrency))
            )
            try:
                yield
            except (ConnectionReconnectingError, ConnectionClosedError) as exc:
                # Stopped while NATS was away: the broker could not drain. Nothing is lost (what
                # was not acked comes back to another fetcher); stop reconnecting and exit.
                log.warning("stopped while NATS at %s was unreachable (%s)", settings.nats_url, exc)
                await connection.close()

    return resources


@asynccontextmanager
async def broker_connection(
    broker: NatsBroker, settings: Settings, on_connected: Callable[[NatsClient], None]
) -> AsyncIterator[NatsClient]:
    """The broker's connection to NATS, closed at the end unless the broker's stop drained it.

    Raises NatsUnreachable when NATS does not answer within NATS_START_WAIT_S.
    """
    try:
        connection = await broker.connect()
    except (OSError, TimeoutError, NatsError) as exc:
        raise unreachable(settings.nats_url, settings.nats_start_wait_s, exc) from exc
    on_connected(connection)
    try:
        yield connection
    finally:
        # On a stop the broker has drained it already; after a failed start nothing else would
        # close it (FastStream stops the broker only once the lifespan has started).
        if not connection.is_closed:
            await connection.close()


async def jetstream_ready(js: JetStreamContext, settings: Settings) -> JobStores:
    """The streams and buckets, and the fetch consumer, once JetStream answers (NATS_START_WAIT_S
    at most; while the analyzer has not made them yet, it waits). Raises NatsUnreachable when
    JetStream never answers, NotProvisioned when a stream is still missing at the end."""

    async def set_up() -> JobStores:
        # The analyzer provisions the streams and buckets; this only checks they are there.
        stores = await await_jetstream(js, settings)
        # Create, or update to these settings, before the subscriber binds to it.
        await js.add_consumer(FETCH_STREAM, consumer_config(settings))
        return stores

    return await when_jetstream_ready(
        set_up,
        url=settings.nats_url,
        start_wait_s=settings.nats_start_wait_s,
        log=NATS_LOG,
        waiting_for=(NotProvisioned,),
    )


def github_config(settings: Settings) -> GitHubConfig:
    return GitHubConfig(
        api_url=settings.github_api_url,
        token=settings.github_token.get_secret_value() if settings.github_token else None,
        timeout_s=settings.fetcher_http_timeout_s,
        retries=settings.fetcher_http_retries,
        backoff_s=settings.fetcher_retry_backoff_s,
        rate_limit_max_wait_s=settings.fetcher_rate_limit_max_wait_s,
        max_redirects=settings.fetcher_max_redirects,
        max_download_bytes=settings.fetcher_max_download_bytes,
        min_rate_bytes_s=settings.fetcher_min_rate_bytes_s,
        min_rate_window_s=settings.fetcher_min_rate_window_s,
    )


@asynccontextmanager
async def in_context(broker: NatsBroker, key: str, value: object) -> AsyncIterator[None]:
    """`value` in the broker's context under `key` (for the handlers' `Context(key)`) for the block."""
    broker.context.set_global(key, value)
    try:
        yield
    finally:
        broker.context.reset_global(key)


def stop_jobs(
    broker: NatsBroker, requests: PullStreamSubscriber, settings: Settings
) -> Callable[[], Awaitable[None]]:
    """The shutdown hook that runs before the broker stops the subscriber and closes the
    connection: every running fetch is handed back (its job queued again, its request nacked for
    another fetcher at once), and a request pulled from then on is handed back without starting."""

    async def stop() -> None:
        slots: JobSlots | None = broker.context.get(SLOTS_KEY)
        if slots is None:
            return
        async with asyncio.timeout(settings.shutdown_timeout_s):
            slots.stop_intake()
            # Stop pulling before anything is nacked, or a request handed back could come
            # straight back to this fetcher's pending pull. (The broker stops it again: a no-op.)
            await requests.stop()
            await slots.close()

    return stop


def ready(settings: Settings) -> Callable[[], Awaitable[None]]:
    """The after-startup hook that says the fetcher is consuming, from where, with what."""

    async def say_ready() -> None:
        log.info(
            "fetcher ready: consuming %s (durable %s) on %s, GitHub API %s%s, gunzip by %s",
            FETCH_STREAM,
            FETCH_DURABLE,
            settings.nats_url,
            settings.github_api_url,
            ", with GITHUB_TOKEN" if settings.github_token else "",
            INFLATE_ENGINE,
        )

    return say_ready
