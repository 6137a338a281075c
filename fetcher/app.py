"""The fetcher as a FastStream application: NATS broker, subscribers, lifespan, health route.

`create_app(settings)` builds everything; nothing else holds a module-level app. The app is
ASGI (FastStream's AsgiFastStream) only to serve `GET /health` on FETCHER_HEALTH_PORT; the
work itself is the JetStream pull subscriber on FETCH_STREAM / FETCH_DURABLE.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
from faststream import Context
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.specification import AsyncAPI
from nats.errors import ConnectionClosedError, ConnectionReconnectingError
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import WithJsonSchema

from fetcher.archive import INFLATE_ENGINE
from fetcher.github import GitHubClient, GitHubConfig
from fetcher.metrics import broker_middleware, metrics_app
from fetcher.pulls import subscribe_pulls
from fetcher.settings import Settings
from fetcher.worker import Fetcher, JobSlots
from jobs_contract import (
    EVENT_COMPLETED,
    EVENT_FAILED,
    EVENT_PROGRESS,
    EVENTS_PREFIX,
    FETCH_DURABLE,
    FETCH_STREAM,
    FETCH_SUBJECT,
    FetchRequest,
    JobEvent,
    JobStores,
    NotProvisioned,
    await_jetstream,
)
from servicekit.logs import setup_logging
from servicekit.nats_connect import connect_options, unreachable, when_jetstream_ready

log = logging.getLogger("fetcher")
NATS_LOG = logging.getLogger("fetcher.nats")
# Seconds for each attempt to connect to NATS.
NATS_CONNECT_TIMEOUT_S = 5.0

# The server publishes this when a request used up its deliveries without an ack.
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{FETCH_STREAM}.{FETCH_DURABLE}"
ADVISORY_QUEUE = "codereview-fetcher-advisories"
# What the lifespan puts in the broker's context for the handlers (FastStream's Context).
FETCHER_KEY = "fetcher"
SLOTS_KEY = "job_slots"


def json_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A self-contained JSON schema of a msgspec Struct (refs inlined), for the AsyncAPI document."""
    (schema,), definitions = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


# The handler reads the raw bytes itself (to fail malformed requests with a reason instead of
# letting them bounce); these annotations only give the AsyncAPI document the real shapes.
FetchRequestPayload = Annotated[Any, WithJsonSchema(json_schema(FetchRequest))]
JobEventPayload = Annotated[Any, WithJsonSchema(json_schema(JobEvent))]


def consumer_config(settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=FETCH_DURABLE,
        name=FETCH_DURABLE,
        filter_subject=FETCH_SUBJECT,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=JsAckPolicy.EXPLICIT,
        ack_wait=settings.fetcher_ack_wait_s,
        # One more than the attempts: that delivery only comes when the last attempt died, and
        # fails the job (see fetcher.worker).
        max_deliver=settings.fetcher_max_deliveries + 1,
        # Pull requests from every fetcher replica together may hold this many unacked requests.
        max_ack_pending=1000,
    )


def delivery_attempt(message: NatsMessage) -> int:
    """Which delivery of the request this is (1 = first)."""
    try:
        return int(message.raw_message.metadata.num_delivered)
    except Exception:  # TestNatsBroker's fake messages carry no JetStream metadata
        return 1


def create_app(settings: Settings | None = None, *, configure_logging: bool = True) -> AsgiFastStream:
    """Build the fetcher app: broker, subscribers, lifespan (JetStream set-up, GitHub client)."""
    settings = settings or Settings()
    if configure_logging:
        setup_logging("fetcher", settings.log_level, settings.log_format, settings.secret_values())
    # FastStream's per-message "Received"/"Processed" lines carry no job id; the worker logs each
    # job with its id, so those go to DEBUG.
    connect, on_connected = connect_options(
        settings.nats_url,
        name="codereview-fetcher",
        timeout_s=NATS_CONNECT_TIMEOUT_S,
        start_wait_s=settings.nats_start_wait_s,
        log=NATS_LOG,
    )
    broker = NatsBroker(
        **connect,
        logger=logging.getLogger("fetcher.broker"),
        log_level=logging.DEBUG,
        middlewares=[broker_middleware()] if settings.metrics_enabled else (),
        # What stopping the subscriber waits for a handler call in flight: ours returns as soon
        # as its job has a slot, and stop_jobs has handed every job back by then.
        graceful_timeout=settings.shutdown_timeout_s,
    )

    requests = broker.subscriber(
        FETCH_SUBJECT,
        stream=JStream(FETCH_STREAM, declare=False),
        durable=FETCH_DURABLE,
        config=consumer_config(settings),
        # One request per pull, and the handler returns only when a job slot is free (JobSlots):
        # a request is pulled only when it can start, so a slow job never holds others back, and
        # none waits in memory without heartbeats while its ack wait runs out.
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_body,
        title="fetch requests",
        description=(
            f"Work queue (stream {FETCH_STREAM}, durable pull consumer {FETCH_DURABLE}): "
            "one FetchRequest per job, published by the analyzer with Nats-Msg-Id = job id."
        ),
    )

    @requests
    async def fetch_requests(
        body: FetchRequestPayload,
        message: NatsMessage,
        fetcher: Annotated[Fetcher, Context(FETCHER_KEY)],
        slots: Annotated[JobSlots, Context(SLOTS_KEY)],
    ) -> None:
        await slots.start(
            fetcher.handle(message.body, message, attempt=delivery_attempt(message)), hand_back=message
        )

    @broker.subscriber(
        MAX_DELIVERIES_ADVISORY, queue=ADVISORY_QUEUE, include_in_schema=False, decoder=_raw_body
    )
    async def max_deliveries(
        body: Any, message: NatsMessage, fetcher: Annotated[Fetcher, Context(FETCHER_KEY)]
    ) -> None:
        try:
            stream_seq = int(json.loads(message.body)["stream_seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable max-deliveries advisory: %r", message.body[:200])
            return
        await fetcher.abandoned(stream_seq)

    subscribe_pulls(broker, settings, FETCHER_KEY)

    for event, what in (
        (EVENT_PROGRESS, "throttled progress while fetching"),
        (EVENT_COMPLETED, "the job is ready"),
        (EVENT_FAILED, "the job failed; `error` says why"),
    ):
        broker.publisher(
            f"{EVENTS_PREFIX}.{{job_id}}.{event}",
            schema=JobEventPayload,
            title=f"job {event}",
            description=f"JobEvent: {what}. Published by the fetcher for outside subscribers.",
        )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            connection = await broker.connect()
        except (OSError, TimeoutError, NatsError) as exc:
            raise unreachable(settings.nats_url, settings.nats_start_wait_s, exc) from exc
        on_connected(connection)
        js = connection.jetstream()

        async def set_up() -> JobStores:
            # The analyzer provisions the streams and buckets; this only checks they are there.
            stores = await await_jetstream(js, settings)
            # Create, or update to these settings, before the subscriber binds to it.
            await js.add_consumer(FETCH_STREAM, consumer_config(settings))
            return stores

        stores = await when_jetstream_ready(
            set_up,
            url=settings.nats_url,
            start_wait_s=settings.nats_start_wait_s,
            log=NATS_LOG,
            waiting_for=(NotProvisioned,),
        )
        github_config = GitHubConfig(
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
        async with GitHubClient(github_config) as github:
            broker.context.set_global(FETCHER_KEY, Fetcher(settings, github, stores, connection))
            broker.context.set_global(SLOTS_KEY, JobSlots(settings.fetcher_concurrency))
            try:
                yield
            except (ConnectionReconnectingError, ConnectionClosedError) as exc:
                # Stopped while NATS was away: the broker could not drain. Nothing is lost (what
                # was not acked comes back to another fetcher); stop reconnecting and exit.
                log.warning("stopped while NATS at %s was unreachable (%s)", settings.nats_url, exc)
                await connection.close()
            finally:
                broker.context.reset_global(FETCHER_KEY)
                broker.context.reset_global(SLOTS_KEY)

    async def stop_jobs() -> None:
        # Before the broker stops the subscriber and closes the connection: every running fetch
        # is handed back (its job queued again, its request nacked for another fetcher at once),
        # and a request pulled from now on is handed back without starting.
        slots: JobSlots | None = broker.context.get(SLOTS_KEY)
        if slots is None:
            return
        async with asyncio.timeout(settings.shutdown_timeout_s):
            slots.stop_intake()
            # Stop pulling before anything is nacked, or a request handed back could come
            # straight back to this fetcher's pending pull. (The broker stops it again: a no-op.)
            await requests.stop()
            await slots.close()

    async def ready() -> None:
        log.info(
            "fetcher ready: consuming %s (durable %s) on %s, GitHub API %s%s, gunzip by %s",
            FETCH_STREAM,
            FETCH_DURABLE,
            settings.nats_url,
            settings.github_api_url,
            ", with GITHUB_TOKEN" if settings.github_token else "",
            INFLATE_ENGINE,
        )

    @get(include_in_schema=False)
    async def health(scope: Any) -> AsgiResponse:
        healthy = broker.context.get(FETCHER_KEY) is not None and await broker.ping(timeout=1.0)
        body = {"status": "ok" if healthy else "unavailable", "nats": settings.nats_url}
        return AsgiResponse(
            json.dumps(body).encode(), 200 if healthy else 503, headers={"content-type": "application/json"}
        )

    return AsgiFastStream(
        broker,
        logger=logging.getLogger("fetcher.app"),
        asgi_routes=[
            ("/health", health),
            *([("/metrics", metrics_app())] if settings.metrics_enabled else []),
        ],
        lifespan=lifespan,
        after_startup=[ready],
        on_shutdown=[stop_jobs],
        specification=AsyncAPI(
            title="codereview fetcher",
            version="0.1.0",
            description=(
                "Downloads GitHub repositories for analyzer jobs: consumes fetch requests, stores "
                "the Python files of each commit in the Object Store `repos`, keeps the job record "
                "in the KV bucket `jobs`, and announces progress, completion and failure."
            ),
        ),
    )


def _raw_body(message: NatsMessage) -> bytes:
    body: bytes = message.body
    return body


def asyncapi_document(app: AsgiFastStream) -> dict[str, Any]:
    """The AsyncAPI (3.0) document FastStream generates for the app, as JSON-ready data."""
    assert app.schema is not None
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return document
