"""A checks-only scan of the stdlib-sized snapshot that `bench analyzer` reviews (CPython's Lib/, about
1,800 files and 31 MB), through the piece checker (analyzer.scan.pieces) and the real gateway.

The piece path alone: this process plays one analyzer with the scan's workers. It builds the
snapshot's index as the app does (every parse in a `ParserPool` of 2 worker processes, within the
default parse budget), starts the snapshot's type check (ty, the default ANALYZER_TYPECHECK_*
budget) as a load does, cuts the files into pieces of --piece-files (default 100) in path order
and checks --workers pieces at a time (default 2) with `PieceChecker`, against `python -m gateway`
started here on loopback (its `POST /checks` runs ruff; no model is asked). Nothing is warm: the
parses, the type check and every ruff run are part of the time.

Figures: wall seconds from the first piece to the last, files, functions and functions per second,
findings by severity, files skipped, and the peak resident memory of each process: this one (the
analyzer's part: VmHWM), the gateway (VmHWM), and the largest of the parser workers, ty and ruff
processes (sampled every 0.2 s: a process shorter than that may be missed). Goal: <= 60 s on the
project's 2-core machine.

Options: --piece-files=N, --workers=N, --gateway=URL (use that gateway, e.g. one already running,
instead of starting one; its memory is then not measured).

Once the scan engine (POST /analyze/scan) is in the analyzer, the same snapshot is to be scanned
end to end through it; until then this measures the part that does the work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from openai import AsyncOpenAI, DefaultAioHttpClient

from analyzer.locate import SnapshotIndex
from analyzer.parsing import ParseBudget, ParserPool
from analyzer.review import GatewayClient
from analyzer.scan.model import Piece, PieceResult
from analyzer.scan.pieces import PieceChecker
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot
from analyzer.typecheck import TypeCheckBudget, TypeChecks
from jobs_contract import Snapshot
from review_contract.scan import SkippedFile
from tests.analyzer.helpers import stdlib_files
from tests.support.servers import service_process

KEY = "python/cpython@" + "0" * 40
SAMPLE_S = 0.2


def _options(argv: list[str]) -> dict[str, str]:
    values = {"piece-files": "100", "workers": "2", "gateway": ""}
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
def _gateway(url: str) -> Iterator[tuple[str, int | None]]:
    """The gateway's URL and its process id (None: not started here)."""
    if url:
        yield url, None
        return
    env = {
        # /checks never asks a provider; one that is never called is named so the gateway starts.
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-bench-scan",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "LOG_LEVEL": "WARNING",
        "METRICS_ENABLED": "false",
    }
    with (
        tempfile.TemporaryDirectory() as logs,
        service_process("gateway", env, Path(logs), port_variable="GATEWAY_PORT") as gateway,
    ):
        yield gateway.url, gateway.process.pid


async def _run(options: dict[str, str]) -> None:
    settings = Settings(_env_file=None)
    files = stdlib_files()
    size = sum(map(len, files.values()))
    lines = sum(data.count(b"\n") for data in files.values())
    print(f"snapshot: {len(files)} files, {lines} lines, {size / 1e6:.1f} MB")
    piece_files, workers = int(options["piece-files"]), int(options["workers"])
    with _gateway(options["gateway"]) as (url, gateway_pid):
        parser = ParserPool(ParseBudget.of(settings), workers=2)
        loaded = LoadedSnapshot(
            key=KEY,
            snapshot=Snapshot(owner="python", repo="cpython", commit_sha="0" * 40, files=files),
            index=SnapshotIndex(files, "python/cpython", parse=parser.parse),
            size=size,
        )
        typechecks = TypeChecks(
            TypeCheckBudget.of(settings), concurrency=settings.analyzer_typecheck_concurrency
        )
        client = AsyncOpenAI(
            base_url=f"{url}/v1",
            api_key="bench",
            timeout=settings.gateway_timeout_s,
            max_retries=0,
            http_client=DefaultAioHttpClient(),
        )
        roots = {os.getpid(): "analyzer"}
        if gateway_pid is not None:
            roots[gateway_pid] = "gateway"
        checker = PieceChecker.of(
            settings,
            parser=parser,
            gateway=GatewayClient(client, settings.gateway_model),
            context=None,
            typechecks=typechecks,
        )
        paths = sorted(files)
        pieces = [
            Piece(scan_id="bench", index=number, job_id="bench", paths=group)
            for number, group in enumerate(_pieces(paths, piece_files))
        ]
        results: list[PieceResult] = []
        queue = iter(pieces)

        async def worker() -> None:
            for piece in queue:
                results.append(await checker.check(piece, loaded, None))

        try:
            with _Peaks(roots) as peaks:
                before_self = resource.getrusage(resource.RUSAGE_SELF)
                before_gateway = _cpu(gateway_pid) if gateway_pid is not None else (0.0, 0.0)
                started = time.perf_counter()
                typechecks.start(loaded.key, files)  # as a snapshot's load starts it
                await asyncio.gather(*(worker() for _ in range(workers)))
                wall = time.perf_counter() - started
                peaks.sample()
            analyzer_hwm = _status(os.getpid(), "VmHWM")
            gateway_hwm = _status(gateway_pid, "VmHWM") if gateway_pid is not None else 0
            after_self = resource.getrusage(resource.RUSAGE_SELF)
            analyzer_cpu = (
                after_self.ru_utime + after_self.ru_stime - before_self.ru_utime - before_self.ru_stime
            )
            after_gateway = _cpu(gateway_pid) if gateway_pid is not None else (0.0, 0.0)
            gateway_cpu = after_gateway[0] - before_gateway[0]
            ruff_cpu = after_gateway[1] - before_gateway[1]
            sampled_cpu = peaks.cpu_s()
            ty_cpu = sum(r.ru_utime + r.ru_stime for r in [resource.getrusage(resource.RUSAGE_CHILDREN)])
        finally:
            await typechecks.aclose()
            await client.close()
            await asyncio.to_thread(parser.close)
    functions = sum(r.functions for r in results)
    checked = sum(r.files for r in results)
    severities = collections.Counter(f.severity for r in results for f in r.findings)
    skipped: list[SkippedFile] = [s for r in results for s in r.skipped]
    rules = collections.Counter(f.rule for r in results for f in r.findings)
    by_severity = ", ".join(f"{level} {count}" for level, count in severities.most_common())
    print(
        f"{len(pieces)} pieces of {piece_files} files, {workers} at a time: wall {wall:.1f} s; "
        f"{checked} files, {functions} functions ({functions / wall:.0f} functions/s); "
        f"{sum(severities.values())} findings ({by_severity}); "
        f"{len(skipped)} files skipped"
    )
    print("most frequent rules: " + ", ".join(f"{rule} {count}" for rule, count in rules.most_common(8)))
    for item in skipped[:5]:
        print(f"  skipped {item.path}: {item.reason}")
    print(f"peak RSS: analyzer (this process) {analyzer_hwm / 1e6:.0f} MB", end="")
    if gateway_pid is not None:
        print(f", gateway {gateway_hwm / 1e6:.0f} MB", end="")
    print()
    for label, peak in sorted(peaks.peaks.items()):
        print(f"  largest {label} process: {peak / 1e6:.0f} MB (sampled)")
    workers_cpu = sum(cpu for label, cpu in sampled_cpu.items() if label.startswith("analyzer: python"))
    print(
        f"CPU seconds: analyzer {analyzer_cpu:.1f}, its parser workers {workers_cpu:.1f} (sampled), "
        f"ty {ty_cpu:.1f} (waited-for children)"
        + (f", gateway {gateway_cpu:.1f}, its ruff runs {ruff_cpu:.1f}" if gateway_pid is not None else "")
        + f"; load average {os.getloadavg()[0]:.1f} at the end"
    )


def main(argv: list[str]) -> None:
    asyncio.run(_run(_options(argv)))
