"""The scan service the analyzer's routes use: start a scan, read its status, page its findings;
it also runs this analyzer's scan workers (ANALYZER_SCAN_WORKERS) while it is open.

A second `POST /analyze/scan` of the same job with the same request (paths, pull, mode, budget)
while the first is queued or running answers the first's scan id; once that scan has ended
(completed or failed) the same request starts a new scan. Any other request is a new scan.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import re
import time
import uuid
from types import TracebackType
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js.errors import ObjectDeletedError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from analyzer.errors import JobFailed, NatsUnavailable
from analyzer.jobs import JobStore, check_job_id
from analyzer.scan.cutting import compile_paths
from analyzer.scan.errors import BadCursor, ScanNotFinished, ScanNotFound, ScanQueueFull
from analyzer.scan.events import ScanEvents
from analyzer.scan.model import PieceChecker, PullScope, ScanRecord, ScanStart
from analyzer.scan.pulls import PullDescriber
from analyzer.scan.sarif import sarif_log
from analyzer.scan.store import ScanStore, check_scan_id
from analyzer.scan.worker import ScanWorkers, WorkerSettings
from analyzer.settings import Settings
from analyzer.snapshots import SnapshotCache, snapshot_gone
from jobs_contract import JobStatus, stream_full
from jobs_contract.jetstream import ScanLimits, ensure_scan_jetstream
from jobs_contract.messages import SCAN_START_SUBJECT
from jobs_contract.settings import StorageSettings
from review_contract.checks import RuleInfo
from review_contract.scan import FindingsPage, ScanBudget, ScanFinding, ScanRequest, ScanStarted, ScanStatus
from servicekit.nats_connect import when_jetstream_ready

logger = logging.getLogger("analyzer.scan.service")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
# Pieces one findings page reads at most (a scan with many pieces without findings answers a short
# page and a cursor rather than read them all in one request).
_PIECES_PER_PAGE = 200
_CURSOR = re.compile(r"([0-9]{1,9}):([0-9]{1,9})")

_encoder = msgspec.json.Encoder()


class ScanService:
    """Open with `async with`: creates the scan queue and bucket if missing, starts the workers
    (none without a `checker`: this analyzer then serves the routes and others check the pieces).
    `nc` must be connected with JetStream ready (the analyzer's lifespan has checked)."""

    def __init__(
        self,
        nc: NatsClient,
        jobs: JobStore,
        snapshots: SnapshotCache,
        checker: PieceChecker | None,
        settings: Settings,
        *,
        repos: ObjectStore | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=settings.nats_timeout_s)
        self._jobs = jobs
        self._snapshots = snapshots
        self._checker = checker
        self._settings = settings
        self._repos = repos
        self._store: ScanStore | None = None
        self._workers: ScanWorkers | None = None

    async def __aenter__(self) -> ScanService:
        settings = self._settings
        limits = ScanLimits(
            queue_max_msgs=settings.analyzer_scan_queue_max_msgs,
            queue_max_bytes=settings.analyzer_scan_queue_max_bytes,
            queue_max_age_s=settings.analyzer_scan_queue_max_age_s,
            bucket_max_bytes=settings.analyzer_scans_max_bytes,
            bucket_max_age_s=settings.analyzer_scans_max_age_s,
            replicas=StorageSettings().nats_replicas,
        )
        # As the jobs' streams: a JetStream that does not answer yet (a cluster electing its
        # leaders, a busy meta leader) is waited for within NATS_START_WAIT_S, not a failed start.
        kv = await when_jetstream_ready(
            lambda: ensure_scan_jetstream(self._js, limits),
            url=settings.nats_url,
            start_wait_s=settings.nats_start_wait_s,
            log=logger,
        )
        # A quarter of NATS' max payload per findings part: room for the headers and then some.
        self._store = ScanStore(kv, part_bytes=max(self._nc.max_payload // 4, 16_384))
        self._workers = ScanWorkers(
            self._js,
            self._store,
            self._jobs,
            self._snapshots,
            self._checker,
            ScanEvents(self._nc, progress_every_s=settings.analyzer_scan_progress_every_s),
            PullDescriber(self._nc, timeout_s=settings.analyzer_scan_pull_timeout_s),
            WorkerSettings(
                workers=settings.analyzer_scan_workers if self._checker is not None else 0,
                ack_wait_s=settings.analyzer_scan_ack_wait_s,
                max_attempts=settings.analyzer_scan_max_attempts,
                piece_timeout_s=settings.analyzer_scan_piece_timeout_s,
                job_wait_s=settings.analyzer_scan_job_wait_s,
            ),
        )
        await self._workers.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._workers is not None:
            await self._workers.stop()

    @property
    def store(self) -> ScanStore:
        if self._store is None:
            raise RuntimeError("the scan service is not open")
        return self._store

    async def start(self, request: ScanRequest, *, pull: PullScope | None = None) -> ScanStarted:
        """Start a scan of a ready or still-fetching job (see the module docstring for a second
        scan of the same job). `pull`: the pull request's changed lines, when `request.pull` is set.

        Raises InvalidJobId (422), InvalidGlob (422), JobNotFound (404), JobFailed (409),
        SnapshotExpired (410), ScanQueueFull (503), NatsUnavailable (503). A pull request is
        described later, by the worker that takes the start (a fetcher asks GitHub).
        """
        check_job_id(request.job_id)
        compile_paths(request.paths)
        job = await self._jobs.get(request.job_id)
        if job.status == JobStatus.FAILED:
            raise JobFailed(
                f"job {job.job_id} failed: {job.error or 'no reason given'}",
                job_id=job.job_id,
                status=str(job.status),
                error=job.error,
            )
        if job.status == JobStatus.READY and job.snapshot is not None and self._repos is not None:
            await self._check_snapshot(job.snapshot)
        settings = self._settings
        now = time.time()
        scan_id = uuid.uuid4().hex
        budget = (
            ScanBudget(
                max_functions=request.max_functions
                if request.max_functions is not None
                else settings.analyzer_scan_max_functions,
                max_tokens=request.max_tokens
                if request.max_tokens is not None
                else settings.analyzer_scan_max_tokens,
            )
            if request.mode == "model"
            else None
        )
        record = ScanRecord(
            status=ScanStatus(
                scan_id=scan_id,
                job_id=request.job_id,
                status="queued",
                mode=request.mode,
                created_at=now,
                updated_at=now,
                paths=request.paths,
                pull=request.pull,
                budget=budget,
            )
        )
        store = self.store
        # The record first, then the claim: a second request that finds this id finds its record.
        await store.create(record)
        claimed = await store.claim(request.job_id, _digest(request, pull), scan_id, self._still_going)
        if claimed != scan_id:
            await self._forget(scan_id)
            logger.info("scan of job %s: the same scan %s is still going, answered", request.job_id, claimed)
            return ScanStarted(scan_id=claimed)
        start = ScanStart(
            scan_id=scan_id,
            job_id=request.job_id,
            mode=request.mode,
            paths=request.paths,
            pull_number=request.pull if pull is None else None,
            pull=pull,
            piece_files=settings.analyzer_scan_piece_files,
            piece_bytes=settings.analyzer_scan_piece_bytes,
            max_files=settings.analyzer_scan_max_files,
        )
        try:
            await self._js.publish(
                SCAN_START_SUBJECT, _encoder.encode(start), headers={"Nats-Msg-Id": f"{scan_id}.start"}
            )
        except (TimeoutError, nats.errors.Error) as exc:
            if stream_full(exc):
                reason = f"the scan queue is full (ANALYZER_SCAN_QUEUE_MAX_MSGS / _BYTES): {exc.description}"
                await self._fail_unqueued(scan_id, reason)
                raise ScanQueueFull(f"{reason}; try again later") from exc
            await self._fail_unqueued(scan_id, f"the scan could not be queued: {exc!r}")
            raise NatsUnavailable(f"could not queue the scan on NATS: {exc!r}") from exc
        logger.info("scan %s of job %s queued (%s)", scan_id, request.job_id, request.mode)
        return ScanStarted(scan_id=scan_id)

    async def status(self, scan_id: str) -> ScanStatus:
        """The scan's status. Raises ScanNotFound (404), NatsUnavailable (503)."""
        return (await self.store.get(scan_id))[0].status

    async def findings(self, scan_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str = "") -> FindingsPage:
        """A page of a completed scan's findings, ordered by path, line, rule; follow `next_cursor`
        until it is None (a page may hold fewer than `limit`, even none, and still have one).

        Raises ScanNotFound (404), BadCursor (400: a limit out of 1..1000, a cursor no page gave),
        ScanNotFinished (409: queued, running or failed), NatsUnavailable (503).
        """
        check_scan_id(scan_id)
        if not 1 <= limit <= MAX_LIMIT:
            raise BadCursor(f"limit must be 1 to {MAX_LIMIT}, got {limit}")
        piece, offset = 0, 0
        if cursor:
            match = _CURSOR.fullmatch(cursor)
            if match is None:
                raise BadCursor(f"cursor {cursor[:40]!r} is not one a page gave")
            piece, offset = int(match[1]), int(match[2])
        record, _ = await self.store.get(scan_id)
        status = record.status
        if status.status != "completed":
            detail = f"scan {scan_id} is {status.status}" + (f": {status.error}" if status.error else "")
            raise ScanNotFinished(
                f"{detail}; findings are listed once it has completed", status=status.status
            )
        total = status.progress.pieces_total
        if piece > total or (piece == total and offset > 0):
            raise BadCursor(f"cursor {cursor!r} is not one a page gave")
        found: list[ScanFinding] = []
        rules: dict[str, RuleInfo] = {}
        read = 0
        while piece < total and len(found) < limit and read < _PIECES_PER_PAGE:
            read += 1
            stored = await self.store.piece(scan_id, piece)
            if stored is None:
                raise NatsUnavailable(f"scan {scan_id}: the result of piece {piece} is missing from NATS")
            if offset > stored.findings:
                raise BadCursor(f"cursor {cursor!r} is not one a page gave")
            start = 0
            for number, size in enumerate(stored.parts):
                if start + size <= offset:
                    start += size
                    continue
                part = await self.store.part(scan_id, piece, number)
                taken = part[offset - start : offset - start + limit - len(found)]
                found.extend(taken)
                rules.update({f.rule: stored.rules[f.rule] for f in taken if f.rule in stored.rules})
                offset += len(taken)
                start += size
                if len(found) >= limit:
                    break
            if offset >= stored.findings:
                piece, offset = piece + 1, 0
        next_cursor = None if piece >= total else f"{piece}:{offset}"
        return FindingsPage(
            findings=found, rules={rule: rules[rule] for rule in sorted(rules)}, next_cursor=next_cursor
        )

    async def sarif(self, scan_id: str) -> dict[str, Any]:
        """The completed scan's findings as a SARIF 2.1.0 log (analyzer.scan.sarif), at most
        `analyzer_scan_sarif_max_results` of them (GitHub takes 25,000 results a run): past it the
        log says so in a notification. Raises what `findings` raises."""
        limit = self._settings.analyzer_scan_sarif_max_results
        found: list[ScanFinding] = []
        rules: dict[str, RuleInfo] = {}
        cursor: str | None = ""
        while cursor is not None and len(found) < limit:
            page = await self.findings(scan_id, limit=MAX_LIMIT, cursor=cursor)
            found.extend(page.findings)
            rules.update(page.rules)
            cursor = page.next_cursor
        log = sarif_log(found[:limit], rules, tool_version=tool_version())
        if cursor is not None or len(found) > limit:
            invocation = log["runs"][0]["invocations"][0]
            invocation.setdefault("toolExecutionNotifications", []).append(
                {
                    "level": "warning",
                    "message": {
                        "text": f"only the first {limit} findings are in this log "
                        "(ANALYZER_SCAN_SARIF_MAX_RESULTS); GET /analyze/scans/{id}/findings lists all"
                    },
                }
            )
        return log

    async def _still_going(self, scan_id: str) -> bool:
        try:
            return (await self.store.get(scan_id))[0].status.status in ("queued", "running")
        except ScanNotFound:
            return False

    async def _check_snapshot(self, key: str) -> None:
        assert self._repos is not None
        try:
            await self._repos.get_info(key)
        except (ObjectNotFoundError, ObjectDeletedError) as exc:
            raise snapshot_gone(key) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailable(f"could not read snapshot {key} from NATS: {exc!r}") from exc

    async def _forget(self, scan_id: str) -> None:
        try:
            await self.store.delete(scan_id)
        except NatsUnavailable:
            logger.warning("scan %s: an unused record was left to age out", scan_id)

    async def _fail_unqueued(self, scan_id: str, reason: str) -> None:
        def failed(current: ScanRecord) -> ScanRecord:
            status = msgspec.structs.replace(
                current.status, status="failed", error=reason, updated_at=time.time()
            )
            return ScanRecord(status=status, done=current.done)

        try:
            await self.store.change(scan_id, failed)
        except (NatsUnavailable, ScanNotFound):
            logger.warning("scan %s: could not mark it failed after the queueing error", scan_id)


@functools.cache
def tool_version() -> str:
    """This release's version, as its package metadata says (images run from source: "unknown");
    read once, not on every SARIF log."""
    try:
        return importlib.metadata.version("codereview")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _digest(request: ScanRequest, pull: PullScope | None) -> str:
    """What makes two scan requests of one job the same scan."""
    same = (request.paths, request.pull, request.mode, request.max_functions, request.max_tokens, pull)
    return hashlib.sha256(_encoder.encode(same)).hexdigest()[:32]
