"""A checks-only scan of the stdlib-sized snapshot that `bench analyzer` reviews (CPython's Lib/, about
1,800 files and 31 MB): the scan engine (analyzer.scan.service, as POST /analyze/scan drives it),
its piece checker (analyzer.scan.pieces) and the real gateway.

By default (--engine=1) a real nats-server runs here, the snapshot is stored as a ready job, and
this process plays one analyzer: a `ScanService` with --workers scan workers (default 2) checking
pieces of ANALYZER_SCAN_PIECE_FILES files (--piece-files) with `GatewayPieceChecker`, parsing in a
`ParserPool` of 2 worker processes within the default parse budget, the snapshot's type check (ty,
the default ANALYZER_TYPECHECK_* budget) started by the first piece, against `python -m gateway`
started here on loopback (its `POST /checks` runs ruff; no model is asked). The scan is started and
followed until it completes, then all its findings are paged. --engine=0 measures the piece path
alone: the same checker over the same pieces, no NATS. Nothing is warm: the snapshot's load, the
parses, the type check and every ruff run are part of the time.

Figures: wall seconds from the scan's start to its end, files, functions and functions per second,
findings by severity, files skipped, the peak resident memory of each process (this one: VmHWM;
the gateway: VmHWM; the largest of the parser workers, ty, nats-server and ruff processes: sampled
every 0.2 s, so a process shorter than that may be missed), and the CPU seconds of each, since on
a shared machine the wall time also measures the others' work. Goal (#21): <= 60 s on the
project's 2-core machine.

Options: --engine=0|1, --workers=N, --piece-files=N, --gateway=URL (use that gateway instead of
starting one; its memory and CPU are then not measured).

--interference=1 runs only this instead: what a scan does to other users' reviews (#21: their
p50 within 2x of idle). nats-server, an instant model (bench.gateway's), `python -m gateway` on it
and `python -m analyzer` (its default scan workers, GatewayPieceChecker on that gateway) all run
as processes; POST /analyze/function on a small job, one at a time, --samples=N idle (default
200, after a warm-up), then the same continuously while POST /analyze/scan checks the stdlib
snapshot, until the scan ends, then --samples again idle: p50/p95/max of each, the ratio of the
p50s (during / idle before, and / idle after), the scan's wall time and the load average.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats

from analyzer.jobs import JobStore
from analyzer.locate import SnapshotIndex
from analyzer.parsing import ParseBudget, ParserPool
from analyzer.review import GatewayClient
from analyzer.scan.model import Piece
from analyzer.scan.pieces import GatewayPieceChecker
from analyzer.scan.service import ScanService
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from analyzer.typecheck import TypeCheckBudget, TypeChecks
from bench.analyzer import _Connection, _post_raw
from bench.gateway import _free_port, _start
from jobs_contract import Snapshot, ensure_jetstream
from review_contract.scan import ScanRequest, SkippedFile
from tests.analyzer.helpers import stdlib_files
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.nats import running_nats_server
from tests.support.servers import service_process

KEY = "python/cpython@" + "0" * 40
SAMPLE_S = 0.2


def _options(argv: list[str]) -> dict[str, str]:
    values = {
        "piece-files": str(Settings(_env_file=None).analyzer_scan_piece_files),
        "workers": "2",
        "gateway": "",
        "engine": "1",
        "interference": "0",
        "samples": "200",
    }
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key in values:
            values[key] = value
    return values


def _status(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status in bytes; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class _Peaks:
    """The largest resident memory seen of each kind of process under `roots`, sampled."""

    def __init__(self, roots: dict[int, str]) -> None:
        self.roots = roots
        self.peaks: collections.Counter[str] = collections.Counter()
        # CPU ticks each process had used when last seen, and its label.
        self.ticks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> _Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        parents: dict[int, int] = {}
        names: dict[int, str] = {}
        ticks: dict[int, int] = {}
        for folder in Path("/proc").iterdir():
            entry = folder.name
            if not entry.isdigit():
                continue
            try:
                stat = (folder / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            parents[int(entry)] = int(fields[1])
            names[int(entry)] = comm
            ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
        for pid in parents:
            if pid in self.roots:  # measured as a whole (VmHWM, its own CPU), not as a child
                continue
            root, ancestor = None, pid
            while ancestor in parents and root is None:
                ancestor = parents[ancestor]
                root = self.roots.get(ancestor)
            if root is None:
                continue
            label = f"{root}: {names[pid]}"
            self.peaks[label] = max(self.peaks[label], _status(pid, "VmRSS"))
            self.ticks[pid] = (label, ticks[pid])

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds of the processes seen, by label, as of their last sample."""
        total: dict[str, float] = {}
        for label, used in self.ticks.values():
            total[label] = total.get(label, 0.0) + used / os.sysconf("SC_CLK_TCK")
        return total


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process (user + system) and of its children it has waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = [int(x) for x in stat[stat.rindex(")") + 2 :].split()[11:15]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1]) / tick, (fields[2] + fields[3]) / tick


def _pieces(paths: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


@contextlib.contextmanager
def _gateway(url: str, upstream: str = "") -> Iterator[tuple[str, int | None]]:
    """The gateway's URL and its process id (None: not started here); its model is `upstream`'s
    OpenAI API (none: /checks only)."""
    if url:
        yield url, None
        return
    env = {
        # /checks never asks a provider; one that is never called is named so the gateway starts.
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-bench-scan",
        "OPENAI_BASE_URL": f"{upstream}/v1" if upstream else "http://127.0.0.1:9/v1",
        "LOG_LEVEL": "WARNING",
        "METRICS_ENABLED": "false",
    }
    with (
        tempfile.TemporaryDirectory() as logs,
        service_process("gateway", env, Path(logs), port_variable="GATEWAY_PORT") as gateway,
    ):
        yield gateway.url, gateway.process.pid


@dataclass
class _Totals:
    """What the scan found, however it was driven."""

    pieces: int = 0
    files: int = 0
    functions: int = 0
    severities: collections.Counter[str] = field(default_factory=collections.Counter)
    rules: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped: list[SkippedFile] = field(default_factory=list)
    status: str = "completed"


async def _pieces_alone(
    checker: GatewayPieceChecker, loaded: LoadedSnapshot, piece_files: int, workers: int
) -> _Totals:
    """The snapshot's files cut into pieces in path order, `workers` checked at a time."""
    paths = sorted(loaded.snapshot.files)
    pieces = [
        Piece(scan_id="bench", index=number, job_id="bench", paths=group)
        for number, group in enumerate(_pieces(paths, piece_files))
    ]
    queue = iter(pieces)
    totals = _Totals(pieces=len(pieces))

    async def worker() -> None:
        for piece in queue:
            result = await checker.check(piece, loaded, None)
            totals.files += result.files
            totals.functions += result.functions
            totals.severities.update(f.severity for f in result.findings)
            totals.rules.update(f.rule for f in result.findings)
            totals.skipped.extend(result.skipped)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return totals


async def _through_engine(scans: ScanService, job_id: str) -> _Totals:
    """POST /analyze/scan's work: a scan of the whole job, followed until it ends."""
    scan_id = (await scans.start(ScanRequest(job_id=job_id))).scan_id
    while (status := await scans.status(scan_id)).status not in ("completed", "failed"):
        await asyncio.sleep(0.05)
    counts = status.counts
    totals = _Totals(
        pieces=status.progress.pieces_total,
        files=counts.files,
        functions=counts.functions,
        severities=collections.Counter(
            {"error": counts.error, "warning": counts.warning, "note": counts.note}
        ),
        skipped=list(status.skipped),
        status=status.status if status.error is None else f"{status.status}: {status.error}",
    )
    cursor = ""
    while status.status == "completed":
        page = await scans.findings(scan_id, limit=1000, cursor=cursor)
        totals.rules.update(f.rule for f in page.findings)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return totals


async def _run(options: dict[str, str], nats_url: str | None) -> None:
    settings = Settings(_env_file=None)
    files = stdlib_files()
    size = sum(map(len, files.values()))
    lines = sum(data.count(b"\n") for data in files.values())
    print(f"snapshot: {len(files)} files, {lines} lines, {size / 1e6:.1f} MB")
    piece_files, workers = int(options["piece-files"]), int(options["workers"])
    with _gateway(options["gateway"]) as (url, gateway_pid):
        parser = ParserPool(ParseBudget.of(settings), workers=2)
        typechecks = TypeChecks(
            TypeCheckBudget.of(settings), concurrency=settings.analyzer_typecheck_concurrency
        )
        client = GatewayClient(
            f"{url}/v1", model=settings.gateway_model, api_key="bench", timeout_s=settings.gateway_timeout_s
        )
        checker = GatewayPieceChecker.of(
            settings,
            parser=parser,
            gateway=client,
            context=None,
            typechecks=typechecks,
        )
        roots = {os.getpid(): "this process"}
        if gateway_pid is not None:
            roots[gateway_pid] = "the gateway"
        try:
            async with contextlib.AsyncExitStack() as stack:
                if nats_url is None:
                    loaded = LoadedSnapshot(
                        key=KEY,
                        snapshot=Snapshot(owner="python", repo="cpython", commit_sha="0" * 40, files=files),
                        index=SnapshotIndex(files, "python/cpython", parse=parser.parse),
                        size=size,
                    )
                else:
                    async with job_stores(nats_url) as stores:
                        job = await put_ready_job(stores, files, owner="python", repo="cpython")
                    scans = await stack.enter_async_context(
                        _engine(nats_url, checker, workers=workers, piece_files=piece_files)
                    )
                with _Peaks(roots) as peaks:
                    before_self = resource.getrusage(resource.RUSAGE_SELF)
                    before_gateway = _cpu(gateway_pid) if gateway_pid is not None else (0.0, 0.0)
                    started = time.perf_counter()
                    if nats_url is None:
                        typechecks.start(loaded.key, files)  # as a snapshot's load starts it
                        totals = await _pieces_alone(checker, loaded, piece_files, workers)
                    else:
                        totals = await _through_engine(scans, job.job_id)
                    wall = time.perf_counter() - started
                    peaks.sample()
                own_hwm = _status(os.getpid(), "VmHWM")
                gateway_hwm = _status(gateway_pid, "VmHWM") if gateway_pid is not None else 0
                after_self = resource.getrusage(resource.RUSAGE_SELF)
                own_cpu = (
                    after_self.ru_utime + after_self.ru_stime - before_self.ru_utime - before_self.ru_stime
                )
                after_gateway = _cpu(gateway_pid) if gateway_pid is not None else (0.0, 0.0)
                # The children waited for so far: ty's runs (parser workers, nats-server, gateway still run).
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                ty_cpu = children.ru_utime + children.ru_stime
        finally:
            await typechecks.aclose()
            await client.aclose()
            await asyncio.to_thread(parser.close)
    by_severity = ", ".join(f"{level} {count}" for level, count in totals.severities.most_common())
    print(
        f"{totals.pieces} pieces of {piece_files} files, {workers} at a time "
        f"({'through the scan engine' if nats_url else 'the piece checker alone'}): {totals.status}, "
        f"wall {wall:.1f} s; {totals.files} files, {totals.functions} functions "
        f"({totals.functions / wall:.0f} functions/s); {sum(totals.severities.values())} findings "
        f"({by_severity}); {len(totals.skipped)} files skipped"
    )
    print(
        "most frequent rules: " + ", ".join(f"{rule} {count}" for rule, count in totals.rules.most_common(8))
    )
    for item in totals.skipped[:3]:
        print(f"  skipped {item.path}: {item.reason}")
    print(f"peak RSS: this process (the analyzer's part) {own_hwm / 1e6:.0f} MB", end="")
    print(f", the gateway {gateway_hwm / 1e6:.0f} MB" if gateway_pid is not None else "")
    for label, peak in sorted(peaks.peaks.items()):
        print(f"  largest of {label} process: {peak / 1e6:.0f} MB (sampled)")
    sampled = peaks.cpu_s()
    workers_cpu = sum(cpu for label, cpu in sampled.items() if label.startswith("this process: python"))
    gateway_cpu = after_gateway[0] - before_gateway[0]
    ruff_cpu = after_gateway[1] - before_gateway[1]
    print(
        f"CPU seconds: this process {own_cpu:.1f}, its parser workers {workers_cpu:.1f} (sampled), "
        f"ty {ty_cpu:.1f}"
        + (
            f", the gateway {gateway_cpu:.1f}, its ruff runs {ruff_cpu:.1f}"
            if gateway_pid is not None
            else ""
        )
        + f"; load average {os.getloadavg()[0]:.1f} at the end"
    )


@contextlib.asynccontextmanager
async def _engine(
    nats_url: str, checker: GatewayPieceChecker, *, workers: int, piece_files: int
) -> AsyncIterator[ScanService]:
    """The scan engine of one analyzer with `workers` scan workers checking pieces with `checker`."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        stores = await ensure_jetstream(js)
        settings = Settings(
            _env_file=None,
            nats_url=nats_url,
            analyzer_scan_workers=workers,
            analyzer_scan_piece_files=piece_files,
        )
        snapshots = SnapshotCache(
            js,
            stores.repos,
            max_entries=settings.analyzer_snapshot_cache_entries,
            max_bytes=settings.analyzer_snapshot_cache_bytes,
            parse=checker.parser.parse,
        )
        async with ScanService(
            client, JobStore(js, stores.kv), snapshots, checker, settings, repos=stores.repos
        ) as scans:
            yield scans
    finally:
        await client.close()


# The other user's repository: a few files with a few functions; each review asks one of them.
_OTHER = {
    "calc.py": (
        "def add(a, b):\n    return a + b\n\n\ndef mean(values):\n    return sum(values) / len(values)\n"
    ),
    "shapes.py": (
        "import math\n\n\nclass Circle:\n    def __init__(self, r):\n        self.r = r\n\n"
        "    def area(self):\n        return math.pi * self.r ** 2\n"
    ),
    "text.py": (
        "def slug(title):\n    return '-'.join(title.lower().split())\n\n\n"
        "def words(text):\n    return len(text.split())\n"
    ),
}
_OTHER_NAMES = ["calc.add", "calc.mean", "shapes.Circle.area", "text.slug", "text.words"]


def _spread(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"n={len(ordered)} p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms, {sum(took > 0.1 for took in ordered)} over 100 ms"
    )


async def _interference(samples: int) -> None:
    """Reviews of a small job idle, then while a checks-only scan of the stdlib snapshot runs."""
    files = stdlib_files()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"scanned snapshot: {len(files)} files, {sum(map(len, files.values())) / 1e6:.1f} MB")
    upstream = f"http://127.0.0.1:{_free_port()}"
    argv = [sys.executable, "-m", "uvicorn", "bench.gateway:instant_upstream"]
    argv += ["--port", upstream.rsplit(":", 1)[1], "--log-level", "warning", "--no-access-log"]
    with (
        tempfile.TemporaryDirectory() as folder,
        running_nats_server(Path(folder) / "jetstream") as nats_url,
        contextlib.ExitStack() as stack,
    ):
        _start(argv, {}, upstream + "/v1/models", stack)
        gateway_url, _ = stack.enter_context(_gateway("", upstream))
        async with job_stores(nats_url) as stores:
            scanned = await put_ready_job(stores, files, owner="python", repo="cpython")
            other = await put_ready_job(stores, _OTHER)
        env = {
            "NATS_URL": nats_url,
            "GATEWAY_URL": f"{gateway_url}/v1",
            "GATEWAY_RETRIES": "0",
            "LOG_LEVEL": "WARNING",
        }
        analyzer = stack.enter_context(
            service_process("analyzer", env, Path(folder), port_variable="ANALYZER_PORT")
        )
        connection = await _Connection.open(analyzer.url)
        names = itertools.cycle(_OTHER_NAMES)
        try:
            for _ in range(20):  # the job's load, its index, the gateway's cache of each review
                await _post_raw(connection, other.job_id, next(names))
            idle = [await _post_raw(connection, other.job_id, next(names)) for _ in range(samples)]
            print(f"idle load average {os.getloadavg()[0]:.1f}")
            async with httpx.AsyncClient(base_url=analyzer.url, timeout=60) as client:
                started = time.perf_counter()
                answer = await client.post("/analyze/scan", json={"job_id": scanned.job_id, "mode": "checks"})
                answer.raise_for_status()
                scan_id = answer.json()["scan_id"]
                status: dict[str, Any] = {"status": "queued"}

                async def follow() -> None:
                    nonlocal status
                    while status["status"] not in ("completed", "failed"):
                        await asyncio.sleep(0.5)
                        status = (await client.get(f"/analyze/scans/{scan_id}")).raise_for_status().json()

                follower = asyncio.create_task(follow())
                during: list[float] = []
                loads: list[float] = []
                while not follower.done():
                    during.append(await _post_raw(connection, other.job_id, next(names)))
                    if len(during) % 50 == 0:
                        loads.append(os.getloadavg()[0])
                await follower
                wall = time.perf_counter() - started
            # Idle again: on a shared machine the others' load drifts; this brackets the scan.
            after = [await _post_raw(connection, other.job_id, next(names)) for _ in range(samples)]
        finally:
            connection.close()
    counts = status.get("counts", {})
    error = f": {status['error']}" if status.get("error") else ""
    print(
        f"scan: {status['status']} in {wall:.1f} s ({counts.get('files')} files, "
        f"{counts.get('functions')} functions){error}"
    )
    print(f"POST /analyze/function idle:        {_spread(idle)}")
    print(f"POST /analyze/function during scan: {_spread(during)}")
    print(f"POST /analyze/function idle after:  {_spread(after)}")
    ratio = statistics.median(during) / statistics.median(idle)
    print(
        f"p50 during / idle: {ratio:.2f}x (goal <= 2x); "
        f"/ idle after: {statistics.median(during) / statistics.median(after):.2f}x"
    )
    if loads:
        print(f"load average during the scan: up to {max(loads):.1f}; at the end {os.getloadavg()[0]:.1f}")


def main(argv: list[str]) -> None:
    options = _options(argv)
    if options["interference"] == "1":
        asyncio.run(_interference(int(options["samples"])))
        return
    if options["engine"] == "0":
        asyncio.run(_run(options, None))
        return
    with tempfile.TemporaryDirectory() as folder, running_nats_server(Path(folder)) as url:
        asyncio.run(_run(options, url))
