"""Jobs on NATS: create the record in the `jobs` KV bucket, queue the fetch request, read and await records.

The analyzer keeps no job state of its own: every answer comes from the KV bucket, so any number
of analyzers can serve the same jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from analyzer.errors import (
    FetchQueueFull,
    InvalidJobId,
    JobFailed,
    JobNotFound,
    JobNotReady,
    NatsUnavailable,
    ShuttingDown,
)
from analyzer.metrics import JOBS
from analyzer.repo_url import RepoTarget
from jobs_contract import (
    FETCH_SUBJECT,
    TERMINAL,
    FetchRequest,
    JobRecord,
    JobStatus,
    decode_job_record,
    encode_json,
    is_job_id,
    stream_full,
)
from servicekit.nats_calls import NatsDeadline, ride_through
from servicekit.request_id import current_request_id

logger = logging.getLogger("analyzer.jobs")


# Seconds a job's watch consumer outlives its watch. nats-py keeps one 5 minutes by default (its
# stop only unsubscribes), and nats-server allows 1,000 consumers a stream: 1,000 waits for jobs
# within 5 minutes and every later wait failed. While the watch runs, its subscription is the
# consumer's interest, so it never counts as inactive however long the job takes.
WATCH_INACTIVE_S = 2.0
# Seconds a watch may stay quiet before the record is read directly: a watch whose consumer was
# lost with a NATS node says nothing, and its waiters would wait for the whole of their wait.
WATCH_CHECK_S = 2.0


def check_job_id(job_id: str) -> str:
    """The job id itself, or InvalidJobId (422) if no job could have it."""
    if not is_job_id(job_id):
        raise InvalidJobId(
            f"job_id {job_id[:200]!r} is not a job id: expected 1-128 letters, digits, '-' or '_'",
            job_id=job_id[:200],
        )
    return job_id


class JobStore:
    """Job records in the KV bucket and the fetch queue, as the analyzer uses them."""

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        *,
        ready_cache_s: float = 0.0,
        ready_cache_entries: int = 10_000,
        deadline_s: float = 10.0,
    ) -> None:
        self._js = js
        self._kv = kv
        # NATS_REQUEST_DEADLINE_S: how long one request waits for NATS (a leader election) in all.
        self._deadline_s = deadline_s
        # Ready records never change (a job is fetched once; a new fetch is a new job), so reviews
        # may reuse one for a few seconds instead of asking NATS each time: a cache, not state.
        self._ready_cache_s = ready_cache_s
        self._ready_cache_entries = ready_cache_entries
        self._ready: OrderedDict[str, tuple[float, JobRecord]] = OrderedDict()
        self._watches: dict[str, _SharedWatch] = {}
        self._stopping = asyncio.Event()

    def stop_waiting(self) -> None:
        """SIGTERM: requests waiting for a job (and any that would start waiting) are answered
        503 at once, instead of holding the stop until their wait or the bound runs out."""
        self._stopping.set()

    async def start(self, target: RepoTarget) -> JobRecord:
        """Create a queued job for `target` and queue its fetch request (message id = job id).

        Raises NatsUnavailable (503) if NATS does not take the record or the request, FetchQueueFull
        (503 with Retry-After) if the fetch queue is at FETCH_QUEUE_MAX_MSGS; a job whose request
        could not be queued is marked failed, so it never waits forever.
        """
        now = time.time()
        record = JobRecord(
            job_id=uuid.uuid4().hex,
            status=JobStatus.QUEUED,
            owner=target.owner,
            repo=target.repo,
            ref=target.ref,
            created_at=now,
            updated_at=now,
        )
        request = FetchRequest(
            job_id=record.job_id,
            owner=target.owner,
            repo=target.repo,
            ref=target.ref,
            requested_at=now,
            request_id=current_request_id(),
        )
        deadline = time.monotonic() + self._deadline_s
        try:
            await ride_through(
                lambda: self._create(record), deadline_s=self._deadline_s, what="creating the job record"
            )
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailable(f"could not create the job record on NATS: {exc!r}") from exc
        try:
            # The message id is the job id: a second attempt after a first that NATS took but
            # answered too late is dropped by the stream's duplicate window, never fetched twice.
            await ride_through(
                lambda: self._js.publish(
                    FETCH_SUBJECT, encode_json(request), headers={"Nats-Msg-Id": record.job_id}
                ),
                deadline_s=max(deadline - time.monotonic(), 0.0),
                what="queueing the fetch request",
            )
        except (TimeoutError, nats.errors.Error) as exc:
            if stream_full(exc):
                full = (
                    "the fetch queue is full: FETCH_QUEUE_MAX_MSGS requests wait for a fetcher "
                    f"(NATS: {exc.description})"
                )
                await self._fail_unqueued(record, full)
                JOBS.labels(JobStatus.FAILED).inc()
                raise FetchQueueFull(f"{full}; try again later") from exc
            await self._fail_unqueued(record, f"the fetch request could not be queued: {exc!r}")
            JOBS.labels(JobStatus.FAILED).inc()
            raise NatsUnavailable(f"could not queue the fetch request on NATS: {exc!r}") from exc
        JOBS.labels(JobStatus.QUEUED).inc()
        logger.info(
            "job %s queued for %s/%s@%s", record.job_id, target.owner, target.repo, target.ref or "(default)"
        )
        return record

    async def _create(self, record: JobRecord) -> None:
        try:
            await self._kv.create(record.job_id, encode_json(record))
        except nats.js.errors.KeyWrongLastSequenceError:
            # The id is new (uuid4): a record under it is this request's own, written by an
            # attempt whose answer was lost in an election. Anything else would be a collision.
            entry = await self._kv.get(record.job_id)
            if entry.value != encode_json(record):
                raise

    async def _fail_unqueued(self, record: JobRecord, reason: str) -> None:
        failed = msgspec.structs.replace(
            record,
            status=JobStatus.FAILED,
            error=reason,
            updated_at=time.time(),
        )
        try:
            await self._kv.put(record.job_id, encode_json(failed))
        except (TimeoutError, nats.errors.Error):
            logger.warning("job %s: could not mark it failed after the queueing error", record.job_id)

    async def get(self, job_id: str) -> JobRecord:
        """The job's current record. Raises InvalidJobId (422), JobNotFound (404), NatsUnavailable (503)."""
        check_job_id(job_id)
        try:
            entry = await ride_through(
                lambda: self._kv.get(job_id), deadline_s=self._deadline_s, what=f"reading job {job_id}"
            )
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError) as exc:
            raise JobNotFound(f"no job {job_id!r}", job_id=job_id) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailable(f"could not read job {job_id!r} from NATS: {exc!r}") from exc
        if entry.value is None:
            raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
        return _decode(job_id, entry.value)

    async def wait_ready(self, job_id: str, wait_s: float) -> JobRecord:
        """The job's record once it is ready, waiting up to `wait_s` seconds while it is queued/fetching.

        Raises InvalidJobId (422), JobNotFound (404), JobFailed (409, with the job's reason),
        JobNotReady (409, with the status it still had), NatsUnavailable (503), ShuttingDown
        (503: the analyzer is stopping, and stopped waiting).
        """
        cached = self._ready.get(job_id)
        if cached is not None and time.monotonic() - cached[0] < self._ready_cache_s:
            return cached[1]
        record = await self.get(job_id)
        if record.status not in TERMINAL and wait_s > 0:
            record = await self._watch_until_terminal(record, wait_s)
        if record.status == JobStatus.READY:
            if self._ready_cache_s > 0:
                self._ready[job_id] = (time.monotonic(), record)
                self._ready.move_to_end(job_id)
                while len(self._ready) > self._ready_cache_entries:
                    self._ready.popitem(last=False)
            return record
        if record.status == JobStatus.FAILED:
            raise JobFailed(
                f"job {job_id} failed: {record.error or 'no reason given'}",
                job_id=job_id,
                status=str(record.status),
                error=record.error,
            )
        raise JobNotReady(
            f"job {job_id} is still {record.status} after waiting {wait_s:g} s; try again later",
            job_id=job_id,
            status=str(record.status),
            progress=record.progress,
        )

    async def _watch_until_terminal(self, record: JobRecord, wait_s: float) -> JobRecord:
        """The job's record once ready/failed, or the latest one seen when `wait_s` runs out.

        All requests of this process waiting on one job share one KV watch (one consumer on
        NATS, however many wait); it stops when the job ends or its last waiter leaves.
        """
        job_id = record.job_id
        if self._stopping.is_set():
            raise self._shutting_down(record)
        shared = self._watches.get(job_id)
        if shared is None:
            shared = _SharedWatch(record)
            shared.task = asyncio.create_task(self._run_watch(shared), name=f"watch job {job_id}")
            self._watches[job_id] = shared
        shared.waiters += 1
        waiting = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(shared.done), wait_s))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                raise self._shutting_down(shared.latest)
            try:
                return waiting.result()
            except TimeoutError:
                return shared.latest
        finally:
            stopping.cancel()
            waiting.cancel()
            shared.waiters -= 1
            if shared.waiters == 0:
                if self._watches.get(job_id) is shared:
                    del self._watches[job_id]
                if shared.task is not None:
                    shared.task.cancel()

    @staticmethod
    def _shutting_down(record: JobRecord) -> ShuttingDown:
        return ShuttingDown(
            f"the analyzer is shutting down: job {record.job_id} is still {record.status}; "
            "ask again (another analyzer, or this one once restarted, answers)",
            job_id=record.job_id,
            status=str(record.status),
        )

    async def _run_watch(self, shared: _SharedWatch) -> None:
        job_id = shared.latest.job_id
        try:
            # A watch that breaks (its consumer lost with a NATS node) is made again, until
            # NATS_REQUEST_DEADLINE_S has passed since it broke; the waiters' own wait bounds the rest.
            broke_at: float | None = None
            while not await self._watch_once(shared, job_id):
                now = time.monotonic()
                broke_at = broke_at or now
                if now - broke_at > self._deadline_s:
                    raise NatsDeadline(f"watching job {job_id}", self._deadline_s, 1, RuntimeError("broke"))
                await asyncio.sleep(0.1)
        except (TimeoutError, nats.errors.Error) as exc:
            shared.fail(NatsUnavailable(f"could not watch job {job_id!r} on NATS: {exc!r}"))
        finally:
            if self._watches.get(job_id) is shared:
                del self._watches[job_id]

    async def _watch_once(self, shared: _SharedWatch, job_id: str) -> bool:
        """Watch the job until it ends (True: the waiters have their answer) or the watch breaks (False)."""
        watcher = await ride_through(
            lambda: self._kv.watch(job_id, inactive_threshold=WATCH_INACTIVE_S),
            deadline_s=self._deadline_s,
            what=f"watching job {job_id}",
        )
        try:
            # The watcher first delivers the key's current value, so no update between the
            # waiter's get (or the watch that broke) and this watch can be missed.
            updates = aiter(watcher)
            while True:
                try:
                    entry = await asyncio.wait_for(anext(updates), WATCH_CHECK_S)
                except StopAsyncIteration:
                    return False
                except TimeoutError:
                    # Quiet for a while: a watch whose consumer died with its node says nothing,
                    # so read the record itself (riding through an election, as any read).
                    try:
                        shared.latest = await self.get(job_id)
                    except (JobNotFound, NatsUnavailable) as exc:
                        shared.fail(exc)
                        return True
                    if shared.latest.status in TERMINAL:
                        shared.done.set_result(shared.latest)
                        return True
                    continue
                if entry is None:  # "no more history" marker
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    shared.fail(JobNotFound(f"job {job_id!r} was deleted while waiting", job_id=job_id))
                    return True
                try:
                    shared.latest = _decode(job_id, entry.value)
                except NatsUnavailable as exc:
                    shared.fail(exc)
                    return True
                if shared.latest.status in TERMINAL:
                    shared.done.set_result(shared.latest)
                    return True
        except Exception as exc:  # whatever breaks the watch, it is made again (or the waiters hear)
            logger.info("job %s: the watch broke (%r); watching again", job_id, exc)
            return False
        finally:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except (TimeoutError, nats.errors.Error):
                logger.debug("job %s: watcher stop failed", job_id)


class _SharedWatch:
    """One KV watch on a job, and what the requests waiting on it need."""

    def __init__(self, record: JobRecord) -> None:
        self.latest = record
        self.done: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
            # Retrieved here: when no one waits any more nobody else would, and asyncio would
            # log "exception was never retrieved".
            self.done.exception()


def _decode(job_id: str, value: bytes) -> JobRecord:
    try:
        return decode_job_record(value)
    except msgspec.DecodeError as exc:
        raise NatsUnavailable(f"job {job_id!r} has an unreadable record in NATS: {exc}") from exc
