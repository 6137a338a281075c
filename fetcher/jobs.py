"""One job's record in the `jobs` KV bucket, and the events that announce its changes.

Every write is a compare-and-set on the entry's revision, so two fetchers that somehow work on
the same job (a redelivery racing a slow first attempt, or the max-deliveries advisory racing
a late success) never overwrite each other blindly: a job that reached ready or failed stays
so, and only the writer that moved it there publishes the completed/failed event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobs_contract import (
    EVENT_COMPLETED,
    EVENT_FAILED,
    EVENT_PROGRESS,
    TERMINAL,
    FetchRequest,
    JobEvent,
    JobRecord,
    JobStatus,
    decode_job_record,
    encode_json,
    event_subject,
)
from servicekit.nats_calls import ELECTION_DEADLINE_S, ride_through

log = logging.getLogger("fetcher.jobs")

T = TypeVar("T")

# How long one write or read of a job waits for NATS in all (an election after a node loss), as
# the analyzer's NATS_REQUEST_DEADLINE_S default; past it the error reaches the fetch, whose
# request comes back after FETCHER_ACK_WAIT_S as before.
RIDE_THROUGH_S = ELECTION_DEADLINE_S


class JobFinished(Exception):  # noqa: N818 - a state, not a failure
    """The job is already ready or failed (another delivery finished it); stop working on it."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        super().__init__(f"job {record.job_id} is already {record.status}")


class FetchJob:
    """The record of one job as last read or written, and the revision to write against."""

    def __init__(self, kv: KeyValue, nc: NatsClient, record: JobRecord, revision: int) -> None:
        self._kv = kv
        self._nc = nc
        self.record = record
        self.revision = revision

    @classmethod
    async def open(cls, kv: KeyValue, nc: NatsClient, request: FetchRequest) -> FetchJob:
        """Read the job's record; create it from the request if the analyzer's write is missing."""
        try:
            entry = await _riding(lambda: kv.get(request.job_id), f"reading job {request.job_id}")
        except KeyNotFoundError:
            entry = None
        if entry is not None and entry.value:
            revision = entry.revision or 0
            return cls(kv, nc, decode_job_record(entry.value), revision)
        now = time.time()
        record = JobRecord(
            job_id=request.job_id,
            status=JobStatus.QUEUED,
            owner=request.owner,
            repo=request.repo,
            ref=request.ref,
            created_at=request.requested_at or now,
            updated_at=now,
        )
        try:
            revision = await _riding(
                lambda: kv.create(request.job_id, encode_json(record)), f"creating job {request.job_id}"
            )
        except KeyWrongLastSequenceError:
            # The analyzer wrote it just now (or an attempt of ours whose answer was lost); read it.
            entry = await _riding(lambda: kv.get(request.job_id), f"reading job {request.job_id}")
            return cls(kv, nc, decode_job_record(entry.value or b""), entry.revision or 0)
        return cls(kv, nc, record, revision)

    @property
    def finished(self) -> bool:
        return self.record.status in TERMINAL

    async def update(self, **changes: Any) -> None:
        """Write `changes` (JobRecord fields) with compare-and-set; raises JobFinished if finished."""
        while True:
            if self.finished:
                raise JobFinished(self.record)
            record = msgspec.structs.replace(self.record, **changes, updated_at=time.time())
            try:
                # An attempt whose answer is lost in an election and that NATS did take makes the
                # next one fail the compare-and-set: the reload below then finds it, and writes again.
                self.revision = await _riding(
                    partial(self._kv.update, self.record.job_id, encode_json(record), self.revision),
                    f"updating job {self.record.job_id}",
                )
            except KeyWrongLastSequenceError:
                await self._reload()
                continue
            self.record = record
            return

    async def _reload(self) -> None:
        entry = await _riding(lambda: self._kv.get(self.record.job_id), f"reading job {self.record.job_id}")
        self.record = decode_job_record(entry.value or b"")
        self.revision = entry.revision or 0

    async def progress(self, **changes: Any) -> None:
        """Update a fetching job and announce it on the progress subject."""
        await self.update(status=JobStatus.FETCHING, **changes)
        await self.publish(EVENT_PROGRESS)

    async def complete(self, **changes: Any) -> bool:
        """Mark the job ready; True if this call did (and announced it), False if it was finished."""
        try:
            await self.update(status=JobStatus.READY, progress=1.0, error=None, **changes)
        except JobFinished:
            return False
        await self.publish(EVENT_COMPLETED)
        return True

    async def fail(self, reason: str) -> bool:
        """Mark the job failed with `reason`; True if this call did, False if it was finished."""
        try:
            await self.update(status=JobStatus.FAILED, error=reason)
        except JobFinished:
            return False
        await self.publish(EVENT_FAILED)
        return True

    async def publish(self, event: str) -> None:
        record = self.record
        message = JobEvent(
            job_id=record.job_id,
            event=event,
            status=record.status,
            progress=record.progress,
            files=record.files,
            bytes=record.bytes,
            commit_sha=record.commit_sha,
            error=record.error,
            at=record.updated_at,
        )
        await self._nc.publish(event_subject(record.job_id, event), encode_json(message))


async def _riding(call: Callable[[], Awaitable[T]], what: str) -> T:
    """`call()` through a JetStream leader election: a fetch that meets one goes on once a new
    leader answers, instead of waiting FETCHER_ACK_WAIT_S for its request to come back."""
    return await ride_through(call, deadline_s=RIDE_THROUGH_S, what=what)
