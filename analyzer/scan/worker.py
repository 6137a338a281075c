"""Scan workers: take scan starts and pieces from the shared work queue, one at a time each.

A start waits for its job, cuts the job's files into pieces and queues them (message ids
`<scan_id>.<index>`, so a start redelivered after its worker died queues no piece twice). A piece
is checked, its result stored under its own keys, the scan's record updated by compare-and-set
(a piece already counted is not counted again), and only then acknowledged: a worker that dies
mid-piece loses nothing, NATS gives the piece to another worker after ANALYZER_SCAN_ACK_WAIT_S.
The update that counts the last piece marks the scan completed; only one update can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from analyzer.errors import AnalyzerError, JobFailed, JobNotFound, JobNotReady
from analyzer.jobs import JobStore
from analyzer.scan.budget import KvBudget
from analyzer.scan.cutting import cut, select
from analyzer.scan.errors import ScanNotFound
from analyzer.scan.events import ScanEvents
from analyzer.scan.model import Piece, PieceChecker, PieceResult, ScanRecord, ScanStart, StoredPiece
from analyzer.scan.store import ScanStore
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from jobs_contract import stream_full
from jobs_contract.messages import SCAN_DURABLE, SCAN_PIECE_SUBJECT, SCAN_START_SUBJECT, SCAN_STREAM
from review_contract.scan import ScanBudget, ScanCounts, ScanProgress
from servicekit.text import printable

logger = logging.getLogger("analyzer.scan.worker")

# The first skipped files a scan's status lists (all are counted).
MAX_SKIPPED_LISTED = 100
# Starts one process waits on at once (past it, a worker waits on the next itself).
_MAX_STARTS = 64
# Characters of a failed scan's reason at most (an exception's text can hold a whole file).
MAX_REASON_CHARS = 1_000
# Seconds a worker waits for a message before asking again (and noticing a stop).
_FETCH_WAIT_S = 5.0

_encoder = msgspec.json.Encoder()
_start = msgspec.json.Decoder(ScanStart)
_piece = msgspec.json.Decoder(Piece)

TERMINAL = ("completed", "failed")


class FinalScanError(Exception):
    """A scan cannot go on, for a reason retrying will not change (the job failed, over the limits)."""


class WorkerSettings(msgspec.Struct, kw_only=True, frozen=True):
    workers: int
    ack_wait_s: float
    max_attempts: int
    piece_timeout_s: float
    job_wait_s: float


def consumer_config(settings: WorkerSettings) -> ConsumerConfig:
    """The durable consumer all analyzers' scan workers share. One delivery more than the
    attempts: the delivery after the last attempt (whose worker died, or hung past ack_wait) fails
    the scan, saying so, instead of leaving the piece undelivered for ever."""
    return ConsumerConfig(
        durable_name=SCAN_DURABLE,
        name=SCAN_DURABLE,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_attempts + 1,
    )


class ScanWorkers:
    """`settings.workers` worker tasks, each with its own pull subscription on the shared consumer."""

    def __init__(
        self,
        js: JetStreamContext,
        store: ScanStore,
        jobs: JobStore,
        snapshots: SnapshotCache,
        checker: PieceChecker | None,
        events: ScanEvents,
        settings: WorkerSettings,
    ) -> None:
        self._js = js
        self._store = store
        self._jobs = jobs
        self._snapshots = snapshots
        self._checker = checker
        self._events = events
        self._settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        # Starts of this process waiting for their jobs, each in a task of its own.
        self._starts: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Create (or update) the shared consumer and start the workers. Raises nats errors."""
        if self._settings.workers == 0 or self._checker is None:
            return
        await self._js.add_consumer(SCAN_STREAM, consumer_config(self._settings))
        for number in range(self._settings.workers):
            subscription = await self._js.pull_subscribe_bind(durable=SCAN_DURABLE, stream=SCAN_STREAM)
            self._tasks.append(asyncio.create_task(self._run(subscription), name=f"scan worker {number}"))

    async def stop(self) -> None:
        """Stop the workers; a piece in hand is handed back to the queue at once (nak)."""
        tasks = [*self._tasks, *self._starts]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        try:
            while True:
                try:
                    messages = await subscription.fetch(1, timeout=_FETCH_WAIT_S)
                except TimeoutError:
                    continue
                except nats.errors.Error as exc:  # reconnecting: try again shortly
                    logger.warning("scan worker: fetching failed: %r", exc)
                    await asyncio.sleep(1.0)
                    continue
                for message in messages:
                    if message.subject == SCAN_START_SUBJECT and len(self._starts) < _MAX_STARTS:
                        # A start may wait long for its job's fetch: off the worker, which goes on
                        # with other scans' pieces meanwhile.
                        task = asyncio.create_task(self.handle(message), name="scan start")
                        self._starts.add(task)
                        task.add_done_callback(self._starts.discard)
                    else:
                        await self.handle(message)
        finally:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await subscription.unsubscribe()

    async def handle(self, message: Msg) -> None:
        """Do one queue message, with heartbeats while it runs; acknowledge it once done. Raises
        nothing but CancelledError (a bug is logged, and the message comes back after the ack wait)."""
        heartbeat = asyncio.create_task(self._heartbeat(message))
        attempt = message.metadata.num_delivered or 1
        try:
            if message.subject == SCAN_START_SUBJECT:
                start = _start.decode(message.data)
                await self._attempt(
                    message,
                    start.scan_id,
                    attempt,
                    "its start (the wait for the job, the cut)",
                    lambda: self._begin(start),
                )
            elif message.subject == SCAN_PIECE_SUBJECT:
                piece = _piece.decode(message.data)
                where = f"piece {piece.index} ({_files(piece.paths)})"
                await self._attempt(message, piece.scan_id, attempt, where, lambda: self._check(piece))
            else:
                logger.warning("scan queue: a message on %s, which no worker takes: dropped", message.subject)
                await message.term()
        except msgspec.DecodeError as exc:
            logger.warning("scan queue: an unreadable message on %s dropped: %s", message.subject, exc)
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await message.term()
        except (TimeoutError, nats.errors.Error, AnalyzerError) as exc:
            # NATS failed while acknowledging or recording: the message comes back after the ack
            # wait, and its next attempt finds what was stored.
            logger.warning("scan worker: a message on %s was left to come back: %r", message.subject, exc)
        except asyncio.CancelledError:
            # Stopping: another worker may take it at once rather than after the ack wait.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.shield(message.nak())
            raise
        except Exception:
            logger.exception("scan worker: a message on %s failed", message.subject)
        finally:
            heartbeat.cancel()

    async def _attempt(
        self, message: Msg, scan_id: str, attempt: int, what: str, work: Callable[[], Awaitable[None]]
    ) -> None:
        tries = self._settings.max_attempts
        if attempt > tries:
            await self.fail(
                scan_id,
                f"{what} was given to a worker {tries} times and never finished (the workers died, "
                f"or took longer than ANALYZER_SCAN_ACK_WAIT_S without a sign of life)",
            )
            await message.term()
            return
        try:
            await work()
        except ScanNotFound:
            logger.warning("scan %s is gone (aged out of the scans bucket): its message is dropped", scan_id)
            await message.term()
            return
        except FinalScanError as exc:
            await self.fail(scan_id, str(exc))
            await message.term()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = exc.detail if isinstance(exc, AnalyzerError) else repr(exc)
            if attempt >= tries:
                await self.fail(scan_id, f"{what} failed {tries} times, the last: {reason}")
                await message.term()
                return
            logger.warning("scan %s: %s failed (attempt %d of %d): %s", scan_id, what, attempt, tries, reason)
            await message.nak(delay=min(2.0**attempt, 30.0))
            return
        await message.ack()

    async def _heartbeat(self, message: Msg) -> None:
        while True:
            await asyncio.sleep(self._settings.ack_wait_s / 3)
            try:
                await message.in_progress()
            except (TimeoutError, nats.errors.Error) as exc:
                logger.warning("scan worker: a heartbeat was not sent: %r", exc)

    async def _job_snapshot(self, job_id: str, wait_s: float) -> LoadedSnapshot:
        try:
            record = await self._jobs.wait_ready(job_id, wait_s)
        except JobFailed as exc:
            raise FinalScanError(
                f"the job {job_id} failed: {exc.extra.get('error') or 'no reason given'}"
            ) from exc
        except JobNotReady as exc:
            raise FinalScanError(
                f"the job {job_id} was still {exc.extra.get('status')} after {wait_s:g} s "
                "(ANALYZER_SCAN_JOB_WAIT_S)"
            ) from exc
        except JobNotFound as exc:
            raise FinalScanError(f"the job {job_id} is gone (aged out of the jobs bucket)") from exc
        if record.snapshot is None:
            raise FinalScanError(f"the job {job_id} is ready but names no snapshot")
        try:
            return await self._snapshots.get(record.snapshot)
        except AnalyzerError as exc:
            if exc.status_code < 500:  # expired or unreadable: no retry brings the files back
                raise FinalScanError(exc.detail) from exc
            raise

    async def _begin(self, start: ScanStart) -> None:
        record, _ = await self._store.get(start.scan_id)
        if record.status.status in TERMINAL:
            return
        loaded = await self._job_snapshot(start.job_id, self._settings.job_wait_s)
        files = loaded.snapshot.files
        paths, skipped = select(files, start.paths, start.pull, loaded.snapshot.skipped)
        if len(paths) > start.max_files:
            raise FinalScanError(
                f"the scan covers {len(paths)} files, over the {start.max_files} a scan may have "
                "(ANALYZER_SCAN_MAX_FILES): narrow it with `paths`"
            )
        pieces = cut(
            paths,
            {path: len(files[path]) for path in paths},
            max_files=start.piece_files,
            max_bytes=start.piece_bytes,
        )

        def running(current: ScanRecord) -> ScanRecord | None:
            if current.status.status != "queued":
                return None  # a redelivered start: the pieces are queued again below, the ids dedupe
            complete = not pieces
            status = msgspec.structs.replace(
                current.status,
                status="completed" if complete else "running",
                updated_at=time.time(),
                progress=ScanProgress(pieces_done=0, pieces_total=len(pieces)),
                counts=msgspec.structs.replace(current.status.counts, skipped=len(skipped)),
                skipped=skipped[:MAX_SKIPPED_LISTED],
            )
            return ScanRecord(status=status, done=[])

        changed = await self._store.change(start.scan_id, running)
        if changed is not None:
            logger.info("scan %s: %d files in %d pieces", start.scan_id, len(paths), len(pieces))
            if changed.status.status == "completed":
                await self._events.ended(changed.status)
                return
            await self._events.progress(changed.status, force=True)
        for index, piece_paths in enumerate(pieces):
            piece = Piece(
                scan_id=start.scan_id,
                index=index,
                job_id=start.job_id,
                paths=piece_paths,
                mode=start.mode,
                lines=(
                    None
                    if start.pull is None
                    else {path: start.pull.lines[path] for path in piece_paths if path in start.pull.lines}
                ),
            )
            try:
                await self._js.publish(
                    SCAN_PIECE_SUBJECT,
                    _encoder.encode(piece),
                    headers={"Nats-Msg-Id": f"{start.scan_id}.{index}"},
                )
            except nats.js.errors.APIError as exc:
                if stream_full(exc):
                    raise FinalScanError(
                        f"the scan queue is full (ANALYZER_SCAN_QUEUE_MAX_MSGS / _BYTES) after {index} of "
                        f"{len(pieces)} pieces: {exc.description}"
                    ) from exc
                raise

    async def _check(self, piece: Piece) -> None:
        record, _ = await self._store.get(piece.scan_id)
        if record.status.status in TERMINAL or piece.index in record.done:
            return  # the scan ended (failed), or this piece was counted before its ack was lost
        loaded = await self._job_snapshot(piece.job_id, 0)
        limits = record.status.budget
        budget = (
            KvBudget(
                self._store, piece.scan_id, max_functions=limits.max_functions, max_tokens=limits.max_tokens
            )
            if piece.mode == "model" and limits is not None
            else None
        )
        if self._checker is None:  # never: start() runs no worker without one
            raise RuntimeError("a scan worker without a piece checker")
        try:
            result = await asyncio.wait_for(
                self._checker.check(piece, loaded, budget), self._settings.piece_timeout_s
            )
        except TimeoutError:
            raise TimeoutError(
                f"checking took more than {self._settings.piece_timeout_s:g} s "
                "(ANALYZER_SCAN_PIECE_TIMEOUT_S)"
            ) from None
        stored = await self._store.put_piece(piece.scan_id, piece.index, result)
        used = await budget.used() if budget is not None else None
        changed = await self._store.change(
            piece.scan_id, lambda current: _counted(current, piece.index, stored, result, used)
        )
        if changed is None:
            return
        if changed.status.status == "completed":
            logger.info("scan %s completed: %s", piece.scan_id, changed.status.counts)
            await self._events.ended(changed.status)
        else:
            await self._events.progress(changed.status)

    async def fail(self, scan_id: str, reason: str) -> None:
        """Mark the scan failed with `reason` (unless it already ended) and say so on NATS. The
        reason is kept printable and at most MAX_REASON_CHARS long."""
        reason = printable(reason)
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."

        def failed(current: ScanRecord) -> ScanRecord | None:
            if current.status.status in TERMINAL:
                return None
            status = msgspec.structs.replace(
                current.status, status="failed", error=reason, updated_at=time.time()
            )
            return ScanRecord(status=status, done=current.done)

        try:
            changed = await self._store.change(scan_id, failed)
        except ScanNotFound:
            return
        if changed is not None:
            logger.warning("scan %s failed: %s", scan_id, reason)
            await self._events.ended(changed.status)


def _counted(
    current: ScanRecord, index: int, stored: StoredPiece, result: PieceResult, used: tuple[int, int] | None
) -> ScanRecord | None:
    """The record with the piece's result counted in; None if it was already, or the scan ended."""
    status = current.status
    if status.status != "running" or index in current.done:
        return None
    severities = Counter(finding.severity for finding in result.findings)
    counts = status.counts
    counts = ScanCounts(
        files=counts.files + stored.files,
        functions=counts.functions + stored.functions,
        findings=counts.findings + stored.findings,
        error=counts.error + severities["error"],
        warning=counts.warning + severities["warning"],
        note=counts.note + severities["note"],
        skipped=counts.skipped + len(stored.skipped),
    )
    done = [*current.done, index]
    total = status.progress.pieces_total
    budget = status.budget
    if budget is not None:
        asked, tokens = used if used is not None else (budget.functions_asked, budget.tokens_used)
        budget = ScanBudget(
            max_functions=budget.max_functions,
            max_tokens=budget.max_tokens,
            functions_asked=max(budget.functions_asked, asked),
            tokens_used=max(budget.tokens_used, tokens),
            exhausted=budget.exhausted or result.budget_exhausted,
        )
    room = MAX_SKIPPED_LISTED - len(status.skipped)
    new = msgspec.structs.replace(
        status,
        status="completed" if len(done) >= total else "running",
        updated_at=time.time(),
        counts=counts,
        progress=ScanProgress(pieces_done=len(done), pieces_total=total),
        budget=budget,
        skipped=[*status.skipped, *stored.skipped[: max(room, 0)]],
    )
    return ScanRecord(status=new, done=done)


def _files(paths: list[str]) -> str:
    if not paths:
        return "no files"
    return paths[0] if len(paths) == 1 else f"{paths[0]} .. {paths[-1]}, {len(paths)} files"
