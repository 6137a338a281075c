"""analyzer.parsing: every parse in a worker process, within a budget of size, CPU time and memory."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from analyzer.errors import WorkersUnavailable
from analyzer.locate import SnapshotIndex
from analyzer.locate.tables import Parsed, Unparsable
from analyzer.parsing import ParseBudget, ParserPool, WorkerPool
from tests.analyzer.killer import Killer

GOOD = b"def add(a, b):\n    return a + b\n"


def one_line_list(size: int) -> bytes:
    """`X = [1, 1, ...]` on one line: a tree hundreds of times the file's size, slow to build."""
    return b"X = [" + b"1, " * (size // 3) + b"]\n"


def test_a_file_over_the_size_budget_is_set_aside_without_a_worker() -> None:
    pool = ParserPool(ParseBudget(max_bytes=1000, cpu_s=10, memory_bytes=2_000_000_000))
    try:
        table = pool.parse(one_line_list(2000), "big.py")
        assert isinstance(table, Unparsable)
        assert table.error == "2005 bytes: over the parse budget of 1000 bytes (ANALYZER_PARSE_MAX_BYTES)"
        assert multiprocessing.active_children() == []  # no worker spawned for it
        assert isinstance(pool.parse(GOOD, "ok.py"), Parsed)
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_parse_over_the_memory_budget_is_set_aside_and_the_worker_goes_on() -> None:
    budget = ParseBudget(max_bytes=10_000_000, cpu_s=30, memory_bytes=400_000_000)
    pool = ParserPool(budget)
    try:
        table = pool.parse(one_line_list(2_000_000), "huge.py")
        assert isinstance(table, Unparsable)
        assert "ANALYZER_PARSE_MEMORY_BYTES" in table.error
        parsed = pool.parse(GOOD, "ok.py")
        assert isinstance(parsed, Parsed)
        assert list(parsed.definitions) == ["add"]
    finally:
        pool.close()


@pytest.mark.slow
def test_a_parse_over_the_cpu_budget_is_set_aside_and_only_that_file() -> None:
    budget = ParseBudget(max_bytes=10_000_000, cpu_s=1, memory_bytes=3_000_000_000)
    pool = ParserPool(budget)
    try:
        # 6 MB: several seconds of CPU to parse, well past the budget of 1 s however fast the machine
        # (3 MB sometimes parsed within it).
        table = pool.parse(one_line_list(6_000_000), "slow.py")
        assert table == budget.too_costly()
        assert "ANALYZER_PARSE_CPU_S" in table.error
        # The worker it killed is replaced.
        assert isinstance(pool.parse(GOOD, "ok.py"), Parsed)
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


@pytest.mark.slow
async def test_parse_files_blames_only_the_file_that_breaks_the_worker() -> None:
    budget = ParseBudget(max_bytes=10_000_000, cpu_s=1, memory_bytes=3_000_000_000)
    pool = ParserPool(budget)
    try:
        tables = await pool.parse_files(
            {"a.py": GOOD, "slow.py": one_line_list(6_000_000), "b.py": GOOD, "README.md": b"# hi"}
        )
        assert set(tables) == {"a.py", "slow.py", "b.py"}
        assert tables["slow.py"] == budget.too_costly()
        assert isinstance(tables["a.py"], Parsed)
        assert isinstance(tables["b.py"], Parsed)
    finally:
        pool.close()


def many_defs(count: int) -> bytes:
    """A valid file that takes a while to parse (30,000 defs: most of a second of CPU)."""
    return b"".join(b"def f%d(a, b):\n    return a + b\n" % number for number in range(count))


@pytest.mark.slow
def test_a_worker_killed_from_outside_does_not_blame_the_file() -> None:
    # Two kills during one lookup used to set a valid file aside as over its CPU budget.
    budget = ParseBudget(max_bytes=10_000_000, cpu_s=30, memory_bytes=3_000_000_000)
    pool = ParserPool(budget)
    valid = many_defs(30_000)
    try:
        with Killer(times=2) as killer:
            table = pool.parse(valid, "valid.py")
        assert len(killer.killed) == 2
        assert isinstance(table, Parsed)
        assert len(table.definitions) == 30_000
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_workers_that_keep_dying_fail_the_parse_for_now_and_decide_nothing() -> None:
    budget = ParseBudget(max_bytes=10_000_000, cpu_s=30, memory_bytes=3_000_000_000)
    pool = ParserPool(budget)
    valid = many_defs(30_000)
    files = {"pkg/__init__.py": b"", "pkg/valid.py": valid + b"def g():\n    pass\n"}
    index = SnapshotIndex(files, "demo", pool.parse)
    try:
        with Killer(times=3) as killer, pytest.raises(WorkersUnavailable) as failed:
            index.find("pkg.valid.f7")
        assert len(killer.killed) == 3
        assert failed.value.status_code == 503
        assert failed.value.detail == (
            "the worker processes that parse pkg/valid.py died 2 times, not of its parse budget "
            "(killed by SIGKILL, killed by SIGKILL): nothing is decided about the file; try again"
        )
        # Nothing was remembered of the file: its names are found once the workers live.
        assert index.find("pkg.valid.g").source == "def g():\n    pass"
        assert index.find("pkg.valid.f7").source == "def f7(a, b):\n    return a + b"
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


@pytest.mark.slow
async def test_parse_files_leaves_out_a_file_whose_workers_keep_dying() -> None:
    budget = ParseBudget(max_bytes=10_000_000, cpu_s=30, memory_bytes=3_000_000_000)
    pool = ParserPool(budget)
    try:
        # Killed with the others of its chunk, then alone in the pool's fresh worker, then in each
        # of its own processes.
        with Killer(times=4) as killer:
            tables = await pool.parse_files({"valid.py": many_defs(30_000)})
        assert len(killer.killed) == 4
        assert tables == {}  # no verdict: the lookup that needs it parses it
        assert isinstance(pool.parse(GOOD, "ok.py"), Parsed)
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("sent", "over_budget"), [(signal.SIGKILL, False), (signal.SIGXCPU, True)], ids=["killed", "over-budget"]
)
def test_a_death_is_told_right_when_the_executor_reaps_the_worker_first(
    sent: signal.Signals, over_budget: bool
) -> None:
    # The executor's own thread joins a dead worker too. When it takes the exit status first
    # (`waitpid`) and records it a moment later, the pool's own join sees "no such child" and no
    # exit code: a kill from outside was once blamed on the budget so.
    worker = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    worker.start()
    assert worker.pid is not None
    os.kill(worker.pid, sent)
    _, status = os.waitpid(worker.pid, 0)  # reaped here, as the executor's thread does...
    popen: Any = worker._popen  # type: ignore[attr-defined]
    # ...which records the status once the pool's thread has looked and found nothing.
    recorder = threading.Timer(0.3, lambda: setattr(popen, "returncode", os.waitstatus_to_exitcode(status)))
    recorder.start()
    try:
        broken = SimpleNamespace(_processes={worker.pid: worker})
        assert WorkerPool.died_of_cpu_budget(broken) is over_budget  # type: ignore[arg-type]
    finally:
        recorder.join()
