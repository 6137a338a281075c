"""The scan engine's own cost (analyzer.scan): queue, KV records and findings, without the checks.

The stdlib-sized snapshot of `bench analyzer` (CPython's Lib/, about 1,800 files) is scanned by
analyzer scan workers on separate NATS connections, as separate analyzers would, against a real
nats-server, with the tests' trivial piece checker (a finding per `def` line, no ruff, no model):
what remains is the engine's time per piece and finding. The snapshot is loaded by a first scan,
so the figure is the engine's and not the load's. Then every finding is paged, 1,000 a page.

Options: --workers=N (analyzers of one worker each, default 2), --piece-files=N (default the
setting's).
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from analyzer.scan.service import ScanService
from analyzer.settings import Settings
from review_contract.scan import ScanRequest, ScanStatus
from tests.analyzer.helpers import stdlib_files
from tests.analyzer.scan_support import DefChecker, worker_analyzer
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.nats import running_nats_server


async def _scan(scans: ScanService, job_id: str) -> tuple[ScanStatus, float]:
    started = time.perf_counter()
    scan_id = (await scans.start(ScanRequest(job_id=job_id))).scan_id
    while (status := await scans.status(scan_id)).status not in ("completed", "failed"):
        await asyncio.sleep(0.01)
    return status, time.perf_counter() - started


async def _run(url: str, workers: int, piece_files: int) -> None:
    files = stdlib_files()
    async with job_stores(url) as stores:
        job = await put_ready_job(stores, files)
    async with AsyncExitStack() as stack:
        analyzers = [
            await stack.enter_async_context(
                worker_analyzer(url, DefChecker(), analyzer_scan_piece_files=piece_files)
            )
            for _ in range(workers)
        ]
        await _scan(analyzers[0], job.job_id)  # every analyzer's cache loads the snapshot (or most)
        await _scan(analyzers[0], job.job_id)
        status, wall = await _scan(analyzers[0], job.job_id)
        started = time.perf_counter()
        found, cursor = 0, ""
        while True:
            page = await analyzers[0].findings(status.scan_id, limit=1000, cursor=cursor)
            found += len(page.findings)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        paging = time.perf_counter() - started
    pieces = status.progress.pieces_total
    print(
        f"{workers} workers, {piece_files} files a piece: {len(files)} files in {pieces} pieces, "
        f"{status.counts.findings} findings, {status.status}: scan {wall:.2f} s "
        f"({wall / pieces * 1000:.1f} ms a piece), paging all {found} findings {paging:.2f} s; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def main(argv: list[str]) -> None:
    values = {"workers": 2, "piece-files": Settings().analyzer_scan_piece_files}
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key in values:
            values[key] = int(value)
    with tempfile.TemporaryDirectory() as folder, running_nats_server(Path(folder)) as url:
        asyncio.run(_run(url, values["workers"], values["piece-files"]))
