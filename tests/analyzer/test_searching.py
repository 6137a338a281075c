"""analyzer.searching: the searches of a snapshot's whole text in a worker process, within a budget."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from analyzer.errors import WorkersUnavailable
from analyzer.locate import NameNotFound, SearchFailed, SnapshotIndex
from analyzer.locate.tables import ParsedFile, parse_file
from analyzer.parsing import ParseBudget
from analyzer.searching import SearchPool
from tests.analyzer.helpers import index, src
from tests.analyzer.killer import Killer

BUDGET = ParseBudget(max_bytes=2_000_000, cpu_s=10, memory_bytes=2_000_000_000)

FILES = {
    "pkg/__init__.py": b"from .calc import add\n",
    "pkg/calc.py": src(
        """
        def add(a, b):
            return a + b


        def add_many(*values):
            return sum(values)


        class Box:
            def size(self):
                return 1
        """
    ),
    "tests/test_calc.py": b"def test_add():\n    assert True\n",
    "intl.py": "def naïve():\n    return 1\n".encode(),
}


@pytest.fixture
def pool() -> Iterator[SearchPool]:
    searches = SearchPool(BUDGET, max_entries=8, max_bytes=100_000_000)
    try:
        yield searches
    finally:
        searches.close()
    assert multiprocessing.active_children() == []


def through(pool: SearchPool, files: dict[str, bytes], key: str = "octo/demo@1") -> SnapshotIndex:
    """An index that parses here (a file over the size budget set aside, as a server's does) and
    searches the text in the pool's worker."""

    def parse(data: bytes, path: str) -> ParsedFile:
        return pool.budget.too_big(len(data)) if len(data) > pool.budget.max_bytes else parse_file(data, path)

    return SnapshotIndex(files, "octo/demo", parse, pool.for_snapshot(key, files, "octo/demo"))


def suggestions(snapshot: SnapshotIndex, name: str) -> list[str]:
    with pytest.raises(NameNotFound) as caught:
        snapshot.find(name)
    return caught.value.suggestions


def test_the_worker_answers_as_a_search_in_this_process_does(pool: SearchPool) -> None:
    here, there = index(FILES, "octo/demo"), through(pool, FILES)
    for name in ("add", "calc.add", "Box.size", "naïve", "test_add", "size"):
        assert there.find(name) == here.find(name), name
    for name in ("pkg.calc.ad", "pkg.calk.add", "Box.sise", "naive", "nothing_like_this"):
        assert suggestions(there, name) == suggestions(here, name), name
    assert suggestions(there, "pkg.calc.ad")[:2] == ["pkg.calc.add", "pkg.calc.add_many"]
    # Past the first few names the worker builds the index of every name, once: same answers.
    for name in ("add_many", "Box", "test_add", "naïve", "add"):
        assert there.find(name) == here.find(name), name


def test_a_snapshot_evicted_from_the_worker_is_sent_again() -> None:
    small = SearchPool(BUDGET, max_entries=1, max_bytes=100_000_000)
    try:
        first = through(small, FILES, "octo/demo@1")
        other = {"lib/tool.py": b"def tool():\n    pass\n"}
        second = through(small, other, "octo/demo@2")
        for _ in range(3):  # each pushes the other out of the one-entry worker
            assert first.find("add").path == "pkg/calc.py"
            assert second.find("tool").path == "lib/tool.py"
            assert suggestions(first, "Box.sise") == ["pkg.calc.Box.size"]
            assert suggestions(second, "tol") == ["tool.tool"]
    finally:
        small.close()


def test_a_worker_that_dies_is_replaced_and_the_snapshot_sent_again(pool: SearchPool) -> None:
    snapshot = through(pool, FILES)
    assert snapshot.find("add").path == "pkg/calc.py"
    (worker,) = multiprocessing.active_children()
    os.kill(worker.pid or 0, signal.SIGKILL)
    worker.join()
    # The next search finds the pool broken, spawns a fresh worker and sends the files again.
    assert snapshot.find("size").qualified_name == "pkg.calc.Box.size"
    assert suggestions(snapshot, "pkg.calc.ad")[0] == "pkg.calc.add"
    (fresh,) = multiprocessing.active_children()
    assert fresh.pid != worker.pid


def _many_defs(count: int) -> bytes:
    return b"".join(b"def f%d(x):\n    return x\n" % i for i in range(count))


@pytest.mark.slow
def test_a_search_over_the_cpu_budget_fails_with_the_settings_to_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A non-ASCII name is looked up in the index of every name: for 1.5M defs, seconds of CPU.
    budget = ParseBudget(max_bytes=2_000_000, cpu_s=1, memory_bytes=3_000_000_000)
    pool = SearchPool(budget, max_entries=8, max_bytes=200_000_000)
    try:
        files = {"defs.py": _many_defs(1_500_000), "calc.py": b"def add(a, b):\n    return a + b\n"}
        snapshot = through(pool, files)
        with pytest.raises(SearchFailed) as caught:
            snapshot.find("naïve")
        assert str(caught.value) == (
            "looking for 'naïve' in the text of octo/demo@1 takes more than the budget of 1 s of CPU "
            "(ANALYZER_PARSE_CPU_S) or 3000000000 bytes of memory (ANALYZER_PARSE_MEMORY_BYTES)"
        )
        # The suggestions of a 404 over the same index: none, and the 404 stays a 404.
        with caplog.at_level(logging.WARNING, logger="analyzer.searching"):
            assert suggestions(snapshot, "defs.f12345678") == []
        assert "no close names offered: looking for names close to 'defs.f12345678'" in caplog.text
        # What needs no such search still works, in a fresh worker.
        assert snapshot.find("calc.add").path == "calc.py"
        assert snapshot.find("add").path == "calc.py"
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_long_search_holds_up_no_search_of_another_snapshot() -> None:
    budget = ParseBudget(max_bytes=2_000_000, cpu_s=60, memory_bytes=3_000_000_000)
    pool = SearchPool(budget, max_entries=8, max_bytes=200_000_000)
    try:
        heavy = through(pool, {"defs.py": _many_defs(1_500_000)}, "octo/heavy@1")
        light = through(pool, FILES, "octo/light@1")
        assert light.find("add").path == "pkg/calc.py"  # the light snapshot is in a worker already
        # Seconds in a worker: the index of 1.5M names, for a non-ASCII name.
        long_search = threading.Thread(target=lambda: suggestions(heavy, "naïve"))
        long_search.start()
        try:
            while pool.busy() == [0, 0]:
                time.sleep(0.01)  # until the long search is in a worker
            (taken,) = [number for number, busy in enumerate(pool.busy()) if busy]
            # Searches of the other snapshot go to the idle worker (sent there if need be).
            answers = [suggestions(light, "pkg.calc.ad")[0], light.find("size").path]
            assert long_search.is_alive()
            assert pool.busy()[taken] == 1
        finally:
            long_search.join()
        assert answers == ["pkg.calc.add", "pkg/calc.py"]
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_search_whose_workers_are_killed_from_outside_is_not_over_its_budget() -> None:
    # Two kills used to answer 422 "takes more than the budget ... (ANALYZER_PARSE_CPU_S)".
    budget = ParseBudget(max_bytes=2_000_000, cpu_s=60, memory_bytes=3_000_000_000)
    pool = SearchPool(budget, max_entries=8, max_bytes=200_000_000, workers=1)
    try:
        files = {"defs.py": _many_defs(300_000), "calc.py": b"def add(a, b):\n    return a + b\n"}
        snapshot = through(pool, files)
        # The search itself takes a worker a few tenths of a second of CPU (the suggestions after
        # it, more): each kill lands within it.
        with Killer(times=2, after_s=0.1) as killer, pytest.raises(WorkersUnavailable) as caught:
            snapshot.find("naïve")
        assert len(killer.killed) == 2
        assert caught.value.status_code == 503
        assert caught.value.detail == (
            "looking for 'naïve' in the text of octo/demo@1: the worker processes that search it died "
            "2 times, not of the search's budget; try again"
        )
        # Nothing was decided: the same search, once the workers live, answers.
        with pytest.raises(NameNotFound):
            snapshot.find("naïve")
        assert snapshot.find("add").path == "calc.py"
    finally:
        pool.close()
    assert multiprocessing.active_children() == []
