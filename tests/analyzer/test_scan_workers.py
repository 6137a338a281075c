"""The scan's workers against a real nats-server: two analyzers sharing one scan, a worker killed
mid-piece, the model budget taken concurrently."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from analyzer.scan.budget import KvBudget
from analyzer.scan.service import ScanService
from analyzer.scan.store import ScanStore
from jobs_contract.jetstream import ScanLimits, ensure_scan_jetstream
from review_contract.scan import ScanFinding, ScanRequest, ScanStatus
from tests.analyzer.scan_support import DefChecker, def_findings, worker_analyzer
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.servers import stop_process

pytestmark = pytest.mark.nats

# 30 files of 1 to 4 functions each.
FILES = {
    f"pkg/mod_{number:02d}.py": "".join(
        f"def f{number}_{k}(x):\n    return x\n\n" for k in range(number % 4 + 1)
    )
    for number in range(30)
}
REPO_ROOT = Path(__file__).resolve().parents[2]


async def until_ended(scans: ScanService, scan_id: str, timeout_s: float = 60.0) -> ScanStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = await scans.status(scan_id)
        if status.status in ("completed", "failed"):
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


async def every_finding(scans: ScanService, scan_id: str) -> list[ScanFinding]:
    found: list[ScanFinding] = []
    cursor = ""
    while True:
        page = await scans.findings(scan_id, limit=7, cursor=cursor)
        found.extend(page.findings)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def reported(found: list[ScanFinding]) -> list[tuple[str, int, str]]:
    return [(f.path, f.line or 0, f.function) for f in found]


async def test_two_analyzers_share_a_scan_and_report_every_function_once(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    first, second = DefChecker(delay_s=0.05), DefChecker(delay_s=0.05)
    async with (
        worker_analyzer(nats_url, first, analyzer_scan_piece_files=1) as one,
        worker_analyzer(nats_url, second, analyzer_scan_piece_files=1) as two,
    ):
        started = await one.start(ScanRequest(job_id=job.job_id))
        status = await until_ended(two, started.scan_id)
        assert status.status == "completed", status
        found = await every_finding(two, started.scan_id)
    expected = def_findings(FILES)
    assert reported(found) == expected
    assert status.counts.functions == status.counts.findings == len(expected)
    assert status.progress.pieces_done == status.progress.pieces_total == 30
    # Both took pieces, and no piece was checked twice.
    assert first.pieces
    assert second.pieces
    assert sorted(first.pieces + second.pieces) == list(range(30))


async def test_a_worker_killed_mid_piece_loses_nothing(nats_url: str, tmp_path: Path) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    marker = tmp_path / "pieces"
    marker.touch()
    # A worker analyzer in a process of its own whose pieces take a minute: killed while in one.
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.analyzer.scan_support", nats_url, str(marker), "60"],
        cwd=REPO_ROOT,
        env={**os.environ, "ANALYZER_SCAN_PIECE_FILES": "3"},
    )
    try:
        async with worker_analyzer(nats_url, None, analyzer_scan_piece_files=3) as front:
            started = await front.start(ScanRequest(job_id=job.job_id))
            deadline = time.monotonic() + 30
            while not marker.read_text():
                assert process.poll() is None, "the worker process exited"
                assert time.monotonic() < deadline, "the worker process took no piece"
                await asyncio.sleep(0.05)
            taken = int(marker.read_text().split()[0])
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            survivor = DefChecker()
            async with worker_analyzer(nats_url, survivor, analyzer_scan_piece_files=3):
                status = await until_ended(front, started.scan_id)
            assert status.status == "completed", status
            found = await every_finding(front, started.scan_id)
    finally:
        stop_process(process)
    assert reported(found) == def_findings(FILES)
    # The killed worker's piece was redelivered to the survivor, which did every piece once.
    assert taken in survivor.pieces
    assert sorted(survivor.pieces) == list(range(10))


async def test_a_model_budget_taken_concurrently_is_never_exceeded(nats_url: str) -> None:
    limits = ScanLimits(
        queue_max_msgs=100,
        queue_max_bytes=1_000_000,
        queue_max_age_s=60,
        bucket_max_bytes=10_000_000,
        bucket_max_age_s=60,
    )
    clients = [await nats.connect(nats_url) for _ in range(2)]
    try:
        stores = [ScanStore(await ensure_scan_jetstream(client.jetstream(), limits)) for client in clients]
        scan_id = "ab" * 16
        budgets = [KvBudget(store, scan_id, max_functions=25, max_tokens=None) for store in stores]
        taken = await asyncio.gather(*(budget.take() for budget in budgets for _ in range(40)))
        assert taken.count(True) == 25
        assert await budgets[0].used() == (25, 0)
        assert all(budget.exhausted for budget in budgets)
        # Tokens: spent concurrently, counted exactly; past the bound no function is taken.
        by_tokens = [KvBudget(store, "cd" * 16, max_functions=None, max_tokens=100) for store in stores]
        assert await by_tokens[0].take()
        await asyncio.gather(*(budget.spend(10) for budget in by_tokens for _ in range(5)))
        assert await by_tokens[1].used() == (1, 100)
        assert not await by_tokens[1].take()
    finally:
        for client in clients:
            await client.close()


async def test_a_model_scan_reports_its_budget(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    checkers = [DefChecker(ask_model=True), DefChecker(ask_model=True)]
    async with (
        worker_analyzer(nats_url, checkers[0], analyzer_scan_piece_files=2) as one,
        worker_analyzer(nats_url, checkers[1], analyzer_scan_piece_files=2),
    ):
        started = await one.start(ScanRequest(job_id=job.job_id, mode="model", max_functions=10))
        status = await until_ended(one, started.scan_id)
    assert status.status == "completed"
    assert status.budget is not None
    assert (status.budget.max_functions, status.budget.functions_asked, status.budget.tokens_used) == (
        10,
        10,
        100,
    )
    assert status.budget.exhausted
    assert status.counts.functions == len(def_findings(FILES))
