"""Warm the snapshot cache when a job completes, so the first review of a fresh job finds it loaded.

The fetcher announces `codereview.jobs.<job_id>.completed` after it marks the job ready; every
analyzer listening loads that snapshot (read, digest check, decode, index) in the background.
A review that arrives meanwhile joins the same load (the cache loads a key once). It is only a
cache warm-up: a lost event, or an analyzer started later, just loads on the first review.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from analyzer.errors import AnalyzerError
from analyzer.jobs import JobStore
from analyzer.snapshots import SnapshotCache
from jobs_contract import EVENT_COMPLETED, EVENTS_PREFIX, JobEvent, JobStatus
from servicekit.logs import bind_job_id

logger = logging.getLogger("analyzer.preload")

_event_decoder = msgspec.json.Decoder(JobEvent)


class Preloader:
    """Listens for completed jobs and loads their snapshots into the cache."""

    def __init__(self, nc: NatsClient, jobs: JobStore, snapshots: SnapshotCache) -> None:
        self._nc = nc
        self._jobs = jobs
        self._snapshots = snapshots
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(
            f"{EVENTS_PREFIX}.*.{EVENT_COMPLETED}", cb=self._on_event
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_event(self, message: Msg) -> None:
        try:
            event = _event_decoder.decode(message.data)
        except msgspec.DecodeError:
            logger.warning("unreadable event on %s: %r", message.subject, message.data[:200])
            return
        if event.status != JobStatus.READY:
            return
        # In a task: the subscription's callbacks run one at a time, and a load takes a while.
        task = asyncio.create_task(self._preload(event.job_id), name=f"preload {event.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _preload(self, job_id: str) -> None:
        bind_job_id(job_id)  # this task's own context: its log lines name the job
        try:
            record = await self._jobs.get(job_id)
            if record.status != JobStatus.READY or record.snapshot is None:
                return
            if record.snapshot in self._snapshots:
                return
            await self._snapshots.get(record.snapshot)
            logger.info("job %s: snapshot %s preloaded", job_id, record.snapshot)
        except AnalyzerError as exc:
            logger.warning("job %s: preload failed: %s", job_id, exc.detail)
