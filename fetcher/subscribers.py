"""The fetcher's broker, and what it consumes and publishes: the fetch requests (a JetStream work
queue), the server's max-deliveries advisories, and the job events (declared for the AsyncAPI
document).

`new_broker(settings)` makes the broker, `subscribe(broker, settings)` registers them all, one
function each; handlers get the fetcher and its job slots from the broker's context, where the
lifespan (fetcher.resources) puts them under FETCHER_KEY and SLOTS_KEY.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.nats.subscriber import PullStreamSubscriber
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import WithJsonSchema

from fetcher.metrics import broker_middleware
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
)
from servicekit.nats_connect import connect_options

log = logging.getLogger("fetcher")
NATS_LOG = logging.getLogger("fetcher.nats")

# The server publishes this when a request used up its deliveries without an ack.
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{FETCH_STREAM}.{FETCH_DURABLE}"
ADVISORY_QUEUE = "codereview-fetcher-advisories"
# What the lifespan puts in the broker's context for the handlers (FastStream's Context).
FETCHER_KEY = "fetcher"
SLOTS_KEY = "job_slots"
# Seconds for each attempt to connect to NATS.
NATS_CONNECT_TIMEOUT_S = 5.0


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


def new_broker(settings: Settings) -> tuple[NatsBroker, Callable[[NatsClient], None]]:
    """The broker, not connected yet, and the function to call with its connection once it is
    (servicekit.nats_connect: a bounded wait at start, endless reconnects after)."""
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
        # FastStream's per-message "Received"/"Processed" lines carry no job id; the worker logs
        # each job with its id, so those go to DEBUG.
        log_level=logging.DEBUG,
        middlewares=[broker_middleware()] if settings.metrics_enabled else (),
        # What stopping the subscriber waits for a handler call in flight: ours returns as soon
        # as its job has a slot, and stop_jobs has handed every job back by then.
        graceful_timeout=settings.shutdown_timeout_s,
    )
    return broker, on_connected


def subscribe(broker: NatsBroker, settings: Settings) -> PullStreamSubscriber:
    """Register the fetcher's subscribers and publishers on `broker`; returns the fetch requests'
    subscriber (a stop stops its pulls before the jobs are handed back)."""
    requests = subscribe_fetch_requests(broker, settings)
    subscribe_pulls(broker, settings, FETCHER_KEY)
    subscribe_max_deliveries(broker)
    declare_job_events(broker)
    return requests


def subscribe_fetch_requests(broker: NatsBroker, settings: Settings) -> PullStreamSubscriber:
    """The work: one fetch request per job, pulled only when a job slot is free."""
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

    return requests


def subscribe_max_deliveries(broker: NatsBroker) -> None:
    """The server's word that a request used up its deliveries: its job is failed."""

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


def declare_job_events(broker: NatsBroker) -> None:
    """The job events the fetcher publishes, declared for the AsyncAPI document."""
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


def _raw_body(message: NatsMessage) -> bytes:
    body: bytes = message.body
    return body
