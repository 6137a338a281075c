"""analyzer.parsing: every parse in a worker process, within a budget of size, CPU time and memory."""

from __future__ import annotations

import multiprocessing

import pytest

from analyzer.locate.tables import Parsed, Unparsable
from analyzer.parsing import ParseBudget, ParserPool

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
