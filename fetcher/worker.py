"""The fetch itself: one FetchRequest in, a stored snapshot and a ready (or failed) job out.

`Fetcher.handle` is the one place that maps outcomes to job state and to JetStream acks:
- success, or a job already finished by another delivery: ack;
- a FetchError that retrying cannot fix: the job fails with its message, ack;
- a retryable error (GitHub 5xx / unreachable, NATS trouble, a bug) with deliveries left:
  nak with a delay, so the request comes back; on the last delivery the job fails instead;
- a fetcher that dies: no ack, so JetStream redelivers after the ack wait; a running fetch
  tells the server it is alive (in-progress acks), so only dead fetchers' requests time out.
  The consumer allows FETCHER_MAX_DELIVERIES + 1 deliveries: the extra one comes only when the
  last attempt died, and it fetches nothing, it fails the job, so a job never stays "fetching"
  (whenever a fetcher next runs). Should even that delivery die, the server's max-deliveries
  advisory reaches `Fetcher.abandoned`, which fails the job too;
- a fetcher that stops (SIGTERM): its running fetches are cancelled, each job goes back to
  queued and its request is nacked without delay, so another fetcher takes it at once, not
  after the ack wait, and nothing is marked failed for the stop (JobSlots.close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import structlog
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError, ObjectNotFoundError, ServiceUnavailableError

from fetcher.archive import ArchiveContents, ArchiveLimits, ArchiveReader
from fetcher.errors import DownloadTimeoutError, FetchError, InvalidRequestError, StorageFullError
from fetcher.github import GitHubClient
from fetcher.jobs import RIDE_THROUGH_S, FetchJob, JobFinished
from fetcher.metrics import DOWNLOADED_BYTES, STORED_BYTES, record_delivery
from fetcher.settings import Settings
from jobs_contract import (
    FETCH_STREAM,
    REPOS_BUCKET,
    FetchRequest,
    JobStatus,
    JobStores,
    Snapshot,
    decode_fetch_request,
    decode_job_record,
    decode_snapshot,
    encode_snapshot,
    is_job_id,
    snapshot_key,
    stream_full,
)
from servicekit.nats_calls import NatsDeadline, ride_through

log = logging.getLogger("fetcher.worker")

_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
# Object headers with the snapshot's counts, so a commit stored earlier is ready without reading it.
FILES_HEADER = "Codereview-Files"
BYTES_HEADER = "Codereview-Bytes"
# When the snapshot was stored (Unix time): one stored more than half of REPOS_MAX_AGE_S ago is
# stored again rather than reused, so a job that becomes ready keeps its files at least that long.
STORED_AT_HEADER = "Codereview-Stored-At"
# The download is this share of the progress; storing the snapshot the rest.
_DOWNLOAD_SHARE = 0.9
# What putting a job back to queued may take when the fetcher stops.
_REQUEUE_TIMEOUT_S = 5.0


class Delivery(Protocol):
    """What the worker needs of a JetStream message (FastStream's NatsMessage has it all)."""

    async def ack(self) -> None: ...
    async def nack(self, delay: float | None = None) -> None: ...
    async def reject(self) -> None: ...
    async def in_progress(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """How one delivery ended, for logs and tests."""

    job_id: str | None
    action: str  # "ready", "failed", "finished-before", "retry", "invalid"
    detail: str = ""
    # The retry is for NATS not answering (timeouts, no JetStream leader), not for GitHub or a bug.
    nats_trouble: bool = False


def redelivery_delay(settings: Settings, attempt: int, *, nats_trouble: bool = False) -> float:
    """Seconds JetStream waits before it delivers again a request whose delivery `attempt` failed.

    The one policy for this kind of retry: 2 x FETCHER_RETRY_BACKOFF_S after the first delivery,
    doubled after each, at most FETCHER_ACK_WAIT_S. Not stamina's (the GitHub client's policy in
    fetcher.github): stamina retries inside one call, while this wait happens in NATS between
    deliveries, which may go to another fetcher, and the nak's delay is the only handle on it.
    """
    if nats_trouble:
        # A NATS cluster electing a new leader after losing a node answers nothing for seconds;
        # quick retries would spend every delivery inside that gap.
        return settings.fetcher_ack_wait_s
    return min(settings.fetcher_ack_wait_s, settings.fetcher_retry_backoff_s * 2.0**attempt)


def decode_request(body: bytes) -> FetchRequest:
    """Decode and check a FetchRequest against the contract; raises InvalidRequestError saying why not."""
    try:
        return decode_fetch_request(body)
    except msgspec.DecodeError as error:
        raise InvalidRequestError(f"invalid fetch request: {error}") from error


class Fetcher:
    """Does fetches; one per process, shared by all deliveries. See the module docstring."""

    def __init__(self, settings: Settings, github: GitHubClient, stores: JobStores, nc: NatsClient) -> None:
        self.settings = settings
        self.github = github
        self.stores = stores
        self.nc = nc
        self.limits = ArchiveLimits(
            max_members=settings.fetcher_max_members,
            max_file_bytes=settings.fetcher_max_file_bytes,
            max_unpacked_bytes=settings.fetcher_max_unpacked_bytes,
            max_snapshot_bytes=settings.fetcher_max_snapshot_bytes,
            max_config_bytes=settings.fetcher_max_config_bytes,
        )

    # -- deliveries ------------------------------------------------------------------------

    async def handle(self, body: bytes, delivery: Delivery, attempt: int) -> Outcome:
        """Work on one delivery of a fetch request and ack/nak/term it; never raises."""
        last = attempt >= self.settings.fetcher_max_deliveries
        try:
            request = decode_request(body)
        except InvalidRequestError as error:
            log.error("rejected a fetch request: %s", error)
            await self._fail_undecodable(body, str(error))
            await _quietly(delivery.reject())
            record_delivery("invalid", 0.0)
            return Outcome(None, "invalid", str(error))

        # This delivery's own task (JobSlots): every line it logs from here on names the job.
        structlog.contextvars.bind_contextvars(job_id=request.job_id, request_id=request.request_id)
        started = time.monotonic()
        try:
            async with _keep_alive(delivery, self.settings.fetcher_ack_wait_s):
                if attempt > self.settings.fetcher_max_deliveries:
                    outcome = await self._give_up(request, attempt - 1)
                else:
                    outcome = await self._handle(request, attempt, last)
        except asyncio.CancelledError:
            # The fetcher is stopping (JobSlots.close): hand the request back for another fetcher now.
            record_delivery("retry", time.monotonic() - started)
            await _quietly(delivery.nack())
            raise
        record_delivery(outcome.action, time.monotonic() - started)
        if outcome.action == "retry":
            delay = redelivery_delay(self.settings, attempt, nats_trouble=outcome.nats_trouble)
            await _quietly(delivery.nack(delay=delay))
        else:
            await _quietly(delivery.ack())
        return outcome

    async def _handle(self, request: FetchRequest, attempt: int, last: bool) -> Outcome:
        extra = {"job_id": request.job_id}
        job: FetchJob | None = None
        try:
            job = await FetchJob.open(self.stores.kv, self.nc, request)
            if job.finished:
                log.info("job already %s; nothing to do", job.record.status, extra=extra)
                return Outcome(request.job_id, "finished-before", str(job.record.status))
            log.info(
                "fetching %s/%s@%s (delivery %d of %d)",
                request.owner,
                request.repo,
                request.ref or "<default branch>",
                attempt,
                self.settings.fetcher_max_deliveries,
                extra=extra,
            )
            return await self._fetch(request, job)
        except asyncio.CancelledError:
            if job is not None:
                await self._requeue(job)
            raise
        except JobFinished as finished:
            log.info("job became %s meanwhile; stopped working on it", finished.record.status, extra=extra)
            return Outcome(request.job_id, "finished-before", str(finished.record.status))
        except FetchError as error:
            if error.retryable and not last:
                log.warning("fetch failed, will retry: %s", error, extra=extra)
                return Outcome(request.job_id, "retry", str(error))
            reason = str(error) if not error.retryable else f"{error} (gave up after {attempt} deliveries)"
            return await self._fail(request, job, reason)
        except Exception as error:
            # NATS trouble or a bug: the next delivery may do better; the last one says so.
            log.exception("fetch crashed", extra=extra)
            if not last:
                trouble = isinstance(error, NatsError | NatsDeadline)
                return Outcome(request.job_id, "retry", repr(error), nats_trouble=trouble)
            return await self._fail(
                request, job, f"internal error in the fetcher: {type(error).__name__}: {error}"
            )

    async def _requeue(self, job: FetchJob) -> None:
        """Put a job this fetcher stops working on back to queued (before its request is nacked,
        so the next fetcher's writes come after this one)."""
        extra = {"job_id": job.record.job_id}
        if job.record.status != JobStatus.FETCHING:
            return
        try:
            async with asyncio.timeout(_REQUEUE_TIMEOUT_S):
                await job.update(status=JobStatus.QUEUED, progress=0.0, bytes=0)
        except JobFinished:
            return
        except Exception as error:
            # The record says fetching until the next fetcher writes it: only a display matter.
            log.warning("could not put the job back to queued: %r", error, extra=extra)
            return
        log.info("fetcher stopping: the job is queued again for another fetcher", extra=extra)

    async def _fail(self, request: FetchRequest, job: FetchJob | None, reason: str) -> Outcome:
        extra = {"job_id": request.job_id}
        try:
            job = job or await FetchJob.open(self.stores.kv, self.nc, request)
            changed = await job.fail(reason)
        except Exception:
            log.exception("could not mark the job failed (%s)", reason, extra=extra)
            return Outcome(request.job_id, "retry", reason)
        if not changed:
            log.info("job already %s; not failing it: %s", job.record.status, reason, extra=extra)
            return Outcome(request.job_id, "finished-before", str(job.record.status))
        log.warning("job failed: %s", reason, extra=extra)
        return Outcome(request.job_id, "failed", reason)

    async def _fail_undecodable(self, body: bytes, reason: str) -> None:
        """Fail the job a malformed request names, if it names one whose record exists."""
        try:
            job_id = msgspec.json.decode(body).get("job_id")
        except (msgspec.DecodeError, AttributeError):
            return
        if not isinstance(job_id, str) or not is_job_id(job_id):
            return
        try:
            entry = await self.stores.kv.get(job_id)
            record = decode_job_record(entry.value or b"")
            request = FetchRequest(
                job_id=job_id, owner=record.owner, repo=record.repo, requested_at=record.created_at
            )
            job = await FetchJob.open(self.stores.kv, self.nc, request)
            await job.fail(reason)
        except Exception as error:
            log.info("malformed request names no job we can fail (%s)", error, extra={"job_id": job_id})

    def _abandoned_reason(self, attempts: int) -> str:
        return (
            f"the fetch was abandoned after {attempts} attempt{'' if attempts == 1 else 's'} "
            f"(FETCHER_MAX_DELIVERIES={self.settings.fetcher_max_deliveries}): "
            "each time the fetcher working on it stopped before finishing"
        )

    async def _give_up(self, request: FetchRequest, attempts: int) -> Outcome:
        """The delivery after the last attempt: that attempt died, so the job fails now."""
        try:
            job = await FetchJob.open(self.stores.kv, self.nc, request)
            if job.finished:
                return Outcome(request.job_id, "finished-before", str(job.record.status))
        except Exception as error:
            # Nack: the server has one delivery left for nobody, then its advisory fails the job.
            log.exception("could not read the job to fail it", extra={"job_id": request.job_id})
            return Outcome(request.job_id, "retry", repr(error))
        return await self._fail(request, job, self._abandoned_reason(attempts))

    async def abandoned(self, stream_seq: int) -> None:
        """The server gave up on a request (no ack after every delivery): fail its job, drop it."""
        js = self.nc.jetstream()
        try:
            message = await js.get_msg(FETCH_STREAM, stream_seq)
        except NotFoundError:
            return
        try:
            request = decode_request(message.data or b"")
        except InvalidRequestError:
            request = None
        if request is not None:
            reason = self._abandoned_reason(self.settings.fetcher_max_deliveries)
            job = await FetchJob.open(self.stores.kv, self.nc, request)
            if await job.fail(reason):
                log.warning("job failed: %s", reason, extra={"job_id": request.job_id})
        with contextlib.suppress(NotFoundError):
            await js.delete_msg(FETCH_STREAM, stream_seq)

    # -- the fetch -------------------------------------------------------------------------

    async def _fetch(self, request: FetchRequest, job: FetchJob) -> Outcome:
        extra = {"job_id": request.job_id}
        owner, repo = request.owner, request.repo
        await job.progress(progress=0.0, bytes=0, files=0, error=None)
        ref = request.ref or await self.github.default_branch(owner, repo)
        if ref != job.record.ref:
            await job.update(ref=ref)

        if _FULL_SHA.fullmatch(ref):
            stored = await self._stored_counts(snapshot_key(owner, repo, ref.lower()))
            if stored is not None:
                return await self._complete(job, ref, ref.lower(), *stored, stored_before=True)

        started = time.monotonic()
        contents, received, downloaded = await self._download(owner, repo, ref, job)
        read = time.monotonic()
        sha = contents.commit_sha
        if sha is None:
            sha = ref.lower() if _FULL_SHA.fullmatch(ref) else await self.github.commit_sha(owner, repo, ref)
        key = snapshot_key(owner, repo, sha)
        files = len(contents.files)
        size = contents.file_bytes
        stored_before = await self._stored_counts(key) is not None
        DOWNLOADED_BYTES.inc(received)
        STORED_BYTES.inc(size)
        if not stored_before:
            await job.progress(progress=_DOWNLOAD_SHARE, bytes=received)
            await self._store(
                key,
                Snapshot(
                    owner=owner,
                    repo=repo,
                    commit_sha=sha,
                    files=contents.files,
                    skipped=contents.skipped,
                    configs=contents.configs,
                ),
                files,
                size,
            )
        outcome = await self._complete(job, ref, sha, files, size, stored_before=stored_before)
        done = time.monotonic()
        log.info(
            "download %.2f s (%d bytes), download end to ready %.2f s (reading the rest %.2f s, "
            "storing %.2f s), %d files, %d configuration files, %d skipped",
            downloaded - started,
            received,
            done - downloaded,
            read - downloaded,
            done - read,
            files,
            len(contents.configs),
            len(contents.skipped) + contents.skipped_unlisted,
            extra=extra,
        )
        return outcome

    async def _complete(
        self, job: FetchJob, ref: str, sha: str, files: int, size: int, *, stored_before: bool
    ) -> Outcome:
        key = snapshot_key(job.record.owner, job.record.repo, sha)
        if await job.complete(ref=ref, commit_sha=sha, snapshot=key, files=files, bytes=size):
            log.info(
                "job ready: %s (%d files, %d bytes%s)",
                key,
                files,
                size,
                ", stored before" if stored_before else "",
                extra={"job_id": job.record.job_id},
            )
            return Outcome(job.record.job_id, "ready", key)
        return Outcome(job.record.job_id, "finished-before", str(job.record.status))

    async def _download(
        self, owner: str, repo: str, ref: str, job: FetchJob
    ) -> tuple[ArchiveContents, int, float]:
        """(contents, bytes received, monotonic time the last byte arrived)."""
        reader: ArchiveReader | None = None
        received = 0
        last_report = time.monotonic()

        async def on_attempt() -> None:
            nonlocal reader, received
            if reader is not None:
                await reader.abort()
            reader = ArchiveReader(self.limits)
            reader.start()
            received = 0

        async def on_chunk(chunk: bytes, announced: int | None) -> None:
            nonlocal received, last_report
            assert reader is not None
            await reader.feed(chunk)
            received += len(chunk)
            now = time.monotonic()
            if now - last_report >= self.settings.fetcher_progress_interval_s:
                last_report = now
                share = min(1.0, received / announced) if announced else 0.0
                await job.progress(progress=round(share * _DOWNLOAD_SHARE, 3), bytes=received)

        limit_s = self.settings.fetcher_download_timeout_s
        try:
            try:
                async with asyncio.timeout(limit_s) as deadline:
                    total = await self.github.download_tarball(owner, repo, ref, on_chunk, on_attempt)
                    downloaded = time.monotonic()
                    assert reader is not None
                    return await reader.finish(), total, downloaded
            except TimeoutError as error:
                if not deadline.expired():
                    raise
                raise DownloadTimeoutError(
                    f"the download of {owner}/{repo} did not finish within "
                    f"FETCHER_DOWNLOAD_TIMEOUT_S={limit_s:g} s ({received} bytes received)"
                ) from error
        except BaseException:
            if reader is not None:
                await reader.abort()
            raise

    async def _stored_counts(self, key: str) -> tuple[int, int] | None:
        """(files, bytes) of a snapshot in the Object Store that lives on for at least half of
        REPOS_MAX_AGE_S, or None if there is none (or it expires sooner, so store it again)."""
        try:
            info = await self.stores.repos.get_info(key)
        except ObjectNotFoundError:
            return None
        headers = info.headers or {}
        try:
            stored_at = float(headers[STORED_AT_HEADER])
        except (KeyError, ValueError, TypeError):
            stored_at = 0.0  # stored by an older release: when is unknown, so treat it as old
        if time.time() - stored_at > self.settings.repos_max_age_s / 2:
            return None
        try:
            return int(headers[FILES_HEADER]), int(headers[BYTES_HEADER])
        except (KeyError, ValueError, TypeError):
            result = await self.stores.repos.get(key)
            snapshot = decode_snapshot(result.data or b"")
            return len(snapshot.files), sum(len(data) for data in snapshot.files.values())

    async def _store(self, key: str, snapshot: Snapshot, files: int, size: int) -> None:
        data = encode_snapshot(snapshot)
        headers = {FILES_HEADER: str(files), BYTES_HEADER: str(size), STORED_AT_HEADER: f"{time.time():.3f}"}
        meta = ObjectMeta(name=key, headers=headers)
        try:
            # Through an election: a put that meets one is made again once a new leader answers
            # (a whole put again: its chunks under a new id, the name then pointing at them).
            await ride_through(
                lambda: self.stores.repos.put(key, data, meta=meta),
                deadline_s=RIDE_THROUGH_S,
                what=f"storing snapshot {key}",
                cut_attempts=False,
            )
        except ServiceUnavailableError as error:
            if not stream_full(error):
                raise
            raise StorageFullError(
                f"the Object Store {REPOS_BUCKET!r} has no room for this snapshot ({len(data)} bytes): "
                f"REPOS_MAX_BYTES={self.settings.repos_max_bytes} is reached; older snapshots leave "
                f"after REPOS_MAX_AGE_S={self.settings.repos_max_age_s:g} s"
            ) from error


class JobSlots:
    """Runs up to `size` jobs at once, each in a task of its own, independent of the others."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)
        self._tasks: dict[asyncio.Task[Outcome], Coroutine[Any, Any, Outcome]] = {}
        self._closed = asyncio.Event()

    async def start(self, job: Coroutine[Any, Any, Outcome], hand_back: Delivery) -> None:
        """Start `job` in a free slot; return once another slot is free (so the caller pulls
        the next request only when it can start at once), or once the slots close.

        After `stop_intake`, `job` never runs and its request is nacked at once (`hand_back`).
        """
        try:
            if not self._closed.is_set():
                await self._until_closed(self._free.acquire())
        except BaseException:
            job.close()
            raise
        if self._closed.is_set():
            job.close()
            await _quietly(hand_back.nack())
            return
        task = asyncio.create_task(self._run(job))
        self._tasks[task] = job
        task.add_done_callback(self._forget)
        if await self._until_closed(self._free.acquire()):
            self._free.release()

    async def _until_closed(self, waiting: Coroutine[Any, Any, bool]) -> bool:
        """Await `waiting` unless the slots close first (then False, and it is abandoned)."""
        wait = asyncio.ensure_future(waiting)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait((wait, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if wait.done() and not wait.cancelled():
            if self._closed.is_set():
                self._free.release()  # acquired just as the slots closed: give it back
                return False
            return wait.result()
        wait.cancel()
        return False

    async def _run(self, job: Coroutine[Any, Any, Outcome]) -> Outcome:
        try:
            return await job
        finally:
            self._free.release()

    def _forget(self, task: asyncio.Task[Outcome]) -> None:
        # A task cancelled before its first step never awaited its job: close it, or Python
        # warns "coroutine was never awaited" (closing a finished one does nothing).
        self._tasks.pop(task).close()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def stop_intake(self) -> None:
        """Start nothing more: `start` hands requests back, and a caller waiting in it returns."""
        self._closed.set()

    async def close(self) -> None:
        """Stop intake, cancel the running jobs (each hands its request back) and wait for them."""
        self.stop_intake()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _keep_alive(delivery: Delivery, ack_wait_s: float) -> AsyncIterator[None]:
    """Tell JetStream the request is being worked on, a few times per ack wait, until done."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(max(0.05, ack_wait_s / 3))
            await _quietly(delivery.in_progress())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _quietly(call: Awaitable[None]) -> None:
    """Await an ack-type call; a lost connection only means the server redelivers later."""
    try:
        await call
    except Exception as error:
        log.warning("acknowledgement failed: %s", error)
