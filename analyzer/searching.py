"""The searches of a snapshot's whole text (analyzer.locate.text) in a worker process that keeps them.

Which files may define a name, and a 404's close names, take CPU in proportion to the snapshot:
the index of a file of 300k defs took most of a second, and suggestions compare the name with
every name of about its length. Run in a lookup's thread, that held the GIL, and other jobs'
lookups waited for it (p50 57.6 ms against 4.2 ms idle). So a `SearchPool` runs them in one
worker process, with the budget of a parse (`ANALYZER_PARSE_CPU_S` for each search, the worker's
address space capped at `ANALYZER_PARSE_MEMORY_BYTES`), and only names and paths come back.

The worker keeps each snapshot's files and name index, built once, for the snapshots the
analyzer has cached recently (at most as many entries and bytes as the snapshot cache): the
files cross to it once per snapshot, with the first search that needs them, in pickles of about
1 MB (the pickling holds the GIL: the 31 MB stdlib in one piece took 27-50 ms here). One worker:
the searches of all snapshots take turns in it, and none of them takes the server's GIL.

A search that breaks the worker (over the CPU budget, or it died) is tried once more in a fresh
one, alone; one over the memory budget too, after the worker dropped what it kept. If it fails
again, `holders` raises SearchFailed (422: the name cannot be looked for in this repository's
text within the budget) and `suggest` offers no close names (the 404 stays a 404).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from analyzer.locate import SnapshotIndex
from analyzer.locate.errors import SearchFailed, shown
from analyzer.locate.tables import ParsedFile
from analyzer.locate.text import Search
from analyzer.parsing import (
    ParseBudget,
    WorkerPool,
    chunks,
    cpu_budget,
    parse_within_budget,
    start_worker,
)

logger = logging.getLogger("analyzer.searching")

# Bytes of files pickled at a time when a snapshot is sent to the worker: the pickling holds the
# GIL (31 MB in one piece took 30-50 ms here), so it is cut into pieces of about 1 ms.
SEND_BYTES = 1024 * 1024

# In the worker: snapshot key -> (its index, which holds its files and name index; its bytes).
_kept: OrderedDict[str, tuple[SnapshotIndex, int]] = OrderedDict()
# In the worker: the files received so far of snapshots not kept yet.
_receiving: dict[str, dict[str, bytes]] = {}
_limits = (1, 1)


class NotKeptError(Exception):
    """In the worker: it does not keep that snapshot (a fresh worker, or evicted): send it."""


def _start_search_worker(memory_bytes: int, max_entries: int, max_bytes: int) -> None:
    global _limits
    start_worker(memory_bytes, 0)
    _limits = (max_entries, max_bytes)


def _parse_one(data: bytes, path: str, *, budget: ParseBudget) -> ParsedFile:
    return parse_within_budget({path: data}, budget)[path]


def _keep(key: str, files: Mapping[str, bytes], repo: str, budget: ParseBudget) -> SnapshotIndex:
    size = sum(map(len, files.values()))
    max_entries, max_bytes = _limits
    kept = sum(entry_size for _, entry_size in _kept.values())
    # Room first: the worker's memory is capped, and the one about to come is the one needed.
    while _kept and (len(_kept) >= max_entries or kept + size > max_bytes):
        _, (_, evicted_size) = _kept.popitem(last=False)
        kept -= evicted_size
    index = SnapshotIndex(files, repo, parse=partial(_parse_one, budget=budget))
    _kept[key] = (index, size)
    return index


def _holders(search: Search, name: str, within: tuple[str, ...] | None) -> frozenset[str]:
    return search.holders(name, within)


def _suggest(search: Search, parts: list[str]) -> list[str]:
    return search.suggest(parts)


def receive(key: str, files: dict[str, bytes]) -> None:
    """In the worker: some of the files of snapshot `key`, to keep with the next search of it."""
    _receiving.setdefault(key, {}).update(files)


def search_in_worker(
    key: str, load: tuple[str, int] | None, budget: ParseBudget, ask: Callable[[Search], object]
) -> object:
    """In the worker: `ask` of the snapshot `key`'s search, within `ANALYZER_PARSE_CPU_S` of CPU.
    `load` = (repo, how many files) when its files were just sent (`receive`): they are kept from
    then on. Raises NotKeptError when the worker does not keep the snapshot (not all of it
    received, or evicted), MemoryError over the memory budget (the worker then keeps nothing)."""
    try:
        entry = _kept.get(key)
        if entry is not None:
            _kept.move_to_end(key)
            index = entry[0]
        else:
            files = _receiving.pop(key, {})
            if load is None or len(files) != load[1]:
                raise NotKeptError(key)
            index = _keep(key, files, load[0], budget)
        with cpu_budget(budget.cpu_s):
            return ask(index.search)
    except MemoryError:
        _kept.clear()
        _receiving.clear()
        raise


class SearchPool(WorkerPool):
    """One worker process that searches the text of the snapshots it is given (`for_snapshot`)."""

    def __init__(self, budget: ParseBudget, *, max_entries: int, max_bytes: int) -> None:
        super().__init__(
            budget.memory_bytes, initializer=_start_search_worker, initargs=(max_entries, max_bytes)
        )
        self.budget = budget

    def start(self) -> None:
        """Spawn the worker now, not on the first search (which would wait for it); nothing once closed."""
        try:
            pool, _ = self._executor()
            pool.submit(int)
        except RuntimeError:  # closed (BrokenProcessPool is one too: the next search replaces it)
            return

    def for_snapshot(self, key: str, files: Mapping[str, bytes], repo: str) -> SnapshotSearch:
        """The `Search` of one snapshot's files (a `SnapshotIndex` takes it), through this worker."""
        return SnapshotSearch(self, key, files, repo)

    def call(self, search: SnapshotSearch, ask: Callable[[Search], object], what: str) -> object:
        """The answer of one search in the worker; blocks the caller (a lookup's thread). Raises
        SearchFailed when it breaks two workers or runs out of memory twice."""
        failures = 0
        while True:
            pool, generation = self._executor()
            load: tuple[str, int] | None = None
            try:
                # In order (one worker takes the calls in turn): the files before the search that
                # keeps them, and that before the searches that count on them.
                with search.lock:
                    if search.sent_to != generation:
                        for files in chunks(search.files, SEND_BYTES):
                            pool.submit(receive, search.key, files)
                        load = (search.repo, len(search.files))
                    future = pool.submit(search_in_worker, search.key, load, self.budget, ask)
                    search.sent_to = generation
                return future.result()
            except NotKeptError:
                search.sent_to = 0
                if load is None:
                    continue  # evicted from the worker: send it again
                # Sent, and still not all there: the worker ran out of memory receiving it.
            except BrokenProcessPool:
                self._discard(pool)
            except MemoryError:
                search.sent_to = 0
            failures += 1
            if failures == 2:
                raise SearchFailed(
                    f"{what} in the text of {search.key} takes more than the budget of "
                    f"{self.budget.cpu_s} s of CPU (ANALYZER_PARSE_CPU_S) or {self.budget.memory_bytes} "
                    "bytes of memory (ANALYZER_PARSE_MEMORY_BYTES)"
                )


class SnapshotSearch:
    """`analyzer.locate.text.Search` of one snapshot, answered by a `SearchPool`'s worker."""

    def __init__(self, pool: SearchPool, key: str, files: Mapping[str, bytes], repo: str) -> None:
        self.pool = pool
        self.key = key
        self.files = files
        self.repo = repo
        self.lock = threading.Lock()
        # The pool generation whose worker was sent the files (0: none).
        self.sent_to = 0

    def holders(self, name: str, within: tuple[str, ...] | None) -> frozenset[str]:
        what = f"looking for {shown(name)}"
        found = self.pool.call(self, partial(_holders, name=name, within=within), what)
        assert isinstance(found, frozenset)
        return found

    def suggest(self, parts: list[str]) -> list[str]:
        name = ".".join(parts)
        try:
            ask = partial(_suggest, parts=parts)
            names = self.pool.call(self, ask, f"looking for names close to {shown(name)}")
        except SearchFailed as exc:
            logger.warning("no close names offered: %s", exc)
            return []
        assert isinstance(names, list)
        return names
