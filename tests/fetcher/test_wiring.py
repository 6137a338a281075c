"""The FastStream wiring, in memory (TestNatsBroker): what reaches which subscriber, and how."""

from __future__ import annotations

import asyncio

import msgspec
from faststream.nats import NatsBroker, TestNatsBroker
from faststream.nats.subscriber.usecases import CoreSubscriber, PullStreamSubscriber

from fetcher.app import create_app
from fetcher.pulls import PULLS_QUEUE
from fetcher.settings import Settings
from fetcher.subscribers import ADVISORY_QUEUE, FETCHER_KEY, MAX_DELIVERIES_ADVISORY, SLOTS_KEY
from fetcher.worker import Delivery, JobSlots, Outcome, redelivery_delay
from jobs_contract import FETCH_DURABLE, FETCH_STREAM, FETCH_SUBJECT, FetchRequest
from jobs_contract.pulls import PULLS_SUBJECT, PullDescription, PullQuery


async def test_fetch_requests_reach_the_pull_subscriber_as_raw_bytes() -> None:
    settings = Settings.model_construct(fetcher_ack_wait_s=12.0, fetcher_max_deliveries=4)
    app = create_app(settings, configure_logging=False)
    assert isinstance(app.broker, NatsBroker)
    [requests] = [s for s in app.broker.subscribers if isinstance(s, PullStreamSubscriber)]
    [advisories] = [
        s
        for s in app.broker.subscribers
        if isinstance(s, CoreSubscriber) and s.subject.template != PULLS_SUBJECT
    ]
    body = msgspec.json.encode(FetchRequest(job_id="j1", owner="octo", repo="demo", requested_at=1.0))
    handled: list[tuple[bytes, int]] = []

    class RecordingFetcher:
        async def handle(self, body: bytes, delivery: Delivery, attempt: int) -> Outcome:
            handled.append((body, attempt))
            return Outcome("j1", "ready")

    # What the lifespan puts in the broker's context (TestNatsBroker runs no lifespan).
    slots = JobSlots(2)
    app.broker.context.set_global(FETCHER_KEY, RecordingFetcher())
    app.broker.context.set_global(SLOTS_KEY, slots)
    async with TestNatsBroker(app.broker) as broker:
        await broker.publish(body, FETCH_SUBJECT, stream=FETCH_STREAM)
        [call] = requests.calls
        assert call.handler.mock is not None
        # Undecoded: the worker decodes it, so a malformed request fails its job with a reason.
        call.handler.mock.assert_called_once_with(body)
        while slots.running:  # the job runs in a task of its own
            await asyncio.sleep(0.01)
    assert handled == [(body, 1)]
    assert requests.pull_sub.batch_size == 1
    assert (requests.stream.name, requests.config.durable_name) == (FETCH_STREAM, FETCH_DURABLE)
    assert (requests.config.ack_wait, requests.config.max_deliver) == (12.0, 5)
    assert (advisories.subject.template, advisories.queue) == (MAX_DELIVERIES_ADVISORY, ADVISORY_QUEUE)


async def test_pull_questions_reach_a_queue_group_answered_several_at_once() -> None:
    settings = Settings.model_construct(fetcher_pull_concurrency=3)
    app = create_app(settings, configure_logging=False)
    assert isinstance(app.broker, NatsBroker)
    [pulls] = [
        s
        for s in app.broker.subscribers
        if isinstance(s, CoreSubscriber) and s.subject.template == PULLS_SUBJECT
    ]
    assert pulls.queue == PULLS_QUEUE
    assert pulls.max_workers == 3  # type: ignore[attr-defined]
    query = msgspec.json.encode(PullQuery(owner="octo", repo="demo", number=1))
    async with TestNatsBroker(app.broker) as broker:
        # Before the lifespan has put the fetcher in the context: an answer, not a timeout.
        reply = await broker.request(query, PULLS_SUBJECT)
        assert msgspec.json.decode(reply.body, type=PullDescription) == PullDescription(
            error="the fetcher is starting; ask again"
        )


def test_a_failed_delivery_comes_back_after_a_doubling_delay_at_most_the_ack_wait() -> None:
    settings = Settings.model_construct(fetcher_ack_wait_s=5.0, fetcher_retry_backoff_s=0.5)
    assert [redelivery_delay(settings, attempt) for attempt in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    # NATS itself in trouble (a cluster electing a leader): wait the longest at once.
    assert redelivery_delay(settings, 1, nats_trouble=True) == 5.0
    off = Settings.model_construct(fetcher_ack_wait_s=5.0, fetcher_retry_backoff_s=0.0)
    assert redelivery_delay(off, 3) == 0.0
