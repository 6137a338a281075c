"""The searches of a snapshot's whole text (analyzer.locate.text) in a worker process that keeps them.

Which files may define a name, and a 404's close names, take CPU in proportion to the snapshot:
the index of a file of 300k defs took most of a second, and suggestions compare the name with
every name of about its length. Run in a lookup's thread, that held the GIL, and other jobs'
lookups waited for it (p50 57.6 ms against 4.2 ms idle). So a `SearchPool` runs them in worker
processes, with the budget of a parse (`ANALYZER_PARSE_CPU_S` for each search, a worker's
address space capped at `ANALYZER_PARSE_MEMORY_BYTES`), and only names and paths come back.

A worker keeps each snapshot's files and name index, built once, for the snapshots it was sent
recently (at most as many entries and bytes as the snapshot cache): the files cross to it with
the first search that needs them there, in pickles of about 1 MB (the pickling holds the GIL: the
31 MB stdlib in one piece took 27-50 ms here). Two workers: a search goes to an idle one, one
that keeps its snapshot if there is one, so that the searches of other snapshots do not wait
behind one that takes seconds; a snapshot searched by both at once is kept by both.

A search that breaks the worker over the CPU budget (SIGXCPU) is tried once more in a fresh one,
alone; one over the memory budget too, after the worker dropped what it kept. If it fails again,
`holders` raises SearchFailed (422: the name cannot be looked for in this repository's text
within the budget) and `suggest` offers no close names (the 404 stays a 404). A worker that dies
otherwise (killed from outside, the machine out of memory) says nothing of the search: it is
tried again in a fresh worker, and after two such deaths `holders` raises WorkersUnavailable
(503, ask again) and `suggest` offers no close names.
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


# How many search workers: a search that takes seconds (a 404 over 300k names) holds one, and the
# searches of other snapshots go to the other, so that they do not wait behind it.
SEARCH_WORKERS = 2

# What `_Lane.search` answers instead of a result: try again (the worker had evicted the snapshot),
# it failed (counts towards SearchFailed), or the worker died of something else than the budget
# (counts towards WorkersUnavailable).
_AGAIN, _FAILED, _DIED = object(), object(), object()
# Deaths not of the budget after which a search gives up for now.
DEATHS = 2


class _Lane(WorkerPool):
    """One search worker, and how many searches are in flight in it (the analyzer's own count)."""

    def __init__(self, number: int, budget: ParseBudget, max_entries: int, max_bytes: int) -> None:
        super().__init__(
            budget.memory_bytes, initializer=_start_search_worker, initargs=(max_entries, max_bytes)
        )
        self.number = number
        self.busy = 0

    def start(self) -> None:
        try:
            pool, _ = self._executor()
            pool.submit(int)
        except RuntimeError:  # closed (BrokenProcessPool is one too: the next search replaces it)
            return

    def holds(self, search: SnapshotSearch) -> bool:
        """Whether this worker was sent the snapshot's files (it may have evicted them since)."""
        return search.sent.get(self.number) == self.generation

    def search(self, search: SnapshotSearch, ask: Callable[[Search], object], budget: ParseBudget) -> object:
        """The answer of `ask` in this worker, `_AGAIN`, `_FAILED` or `_DIED`."""
        pool, generation = self._executor()
        load: tuple[str, int] | None = None
        try:
            # In order (the worker takes the calls in turn): the files before the search that
            # keeps them, and that before the searches that count on them.
            with search.lock:
                if search.sent.get(self.number) != generation:
                    for files in chunks(search.files, SEND_BYTES):
                        pool.submit(receive, search.key, files)
                    load = (search.repo, len(search.files))
                future = pool.submit(search_in_worker, search.key, load, budget, ask)
                search.sent[self.number] = generation
            return future.result()
        except NotKeptError:
            search.sent.pop(self.number, None)
            # Evicted from the worker: send it again. Sent, and still not all there: the worker
            # ran out of memory receiving it.
            return _AGAIN if load is None else _FAILED
        except BrokenProcessPool:  # on submit too: the pool may be known broken already
            over_budget = self.died_of_cpu_budget(pool)
            self._discard(pool)
            return _FAILED if over_budget else _DIED
        except MemoryError:
            search.sent.pop(self.number, None)
        return _FAILED


class SearchPool:
    """Worker processes that search the text of the snapshots they are given (`for_snapshot`).

    A search goes to an idle worker, one that keeps its snapshot if there is one (else the files
    are sent to it); when none is idle, to the least busy. Safe to share between threads.
    """

    def __init__(
        self, budget: ParseBudget, *, max_entries: int, max_bytes: int, workers: int = SEARCH_WORKERS
    ) -> None:
        self.budget = budget
        self._lanes = [_Lane(number, budget, max_entries, max_bytes) for number in range(workers)]
        self._lock = threading.Lock()

    def start(self) -> None:
        """Spawn the workers now, not on the first searches (which would wait for them); nothing
        once closed."""
        for lane in self._lanes:
            lane.start()

    def close(self) -> None:
        """Stop the workers (a search under way is abandoned: its caller gets BrokenProcessPool)."""
        for lane in self._lanes:
            lane.close()

    def busy(self) -> list[int]:
        """How many searches are in flight in each worker."""
        with self._lock:
            return [lane.busy for lane in self._lanes]

    def for_snapshot(self, key: str, files: Mapping[str, bytes], repo: str) -> SnapshotSearch:
        """The `Search` of one snapshot's files (a `SnapshotIndex` takes it), through these workers."""
        return SnapshotSearch(self, key, files, repo)

    def _take(self, search: SnapshotSearch) -> _Lane:
        with self._lock:
            idle = [lane for lane in self._lanes if lane.busy == 0] or self._lanes
            holding = [lane for lane in idle if lane.holds(search)]
            lane = min(holding or idle, key=lambda lane: lane.busy)
            lane.busy += 1
            return lane

    def call(self, search: SnapshotSearch, ask: Callable[[Search], object], what: str) -> object:
        """The answer of one search in a worker; blocks the caller (a lookup's thread). Raises
        SearchFailed when it breaks two workers or runs out of memory twice, WorkersUnavailable
        when workers die under it twice of something else than the budget."""
        failures = deaths = 0
        while True:
            lane = self._take(search)
            try:
                answer = lane.search(search, ask, self.budget)
            finally:
                with self._lock:
                    lane.busy -= 1
            if answer is _AGAIN:
                continue
            if answer is _DIED:
                deaths += 1
                if deaths == DEATHS:
                    # Not imported at the top: the workers import this module, and need no Litestar.
                    from analyzer.errors import WorkersUnavailable

                    raise WorkersUnavailable(
                        f"{what} in the text of {search.key}: the worker processes that search it "
                        f"died {deaths} times, not of the search's budget; try again"
                    )
                continue
            if answer is not _FAILED:
                return answer
            failures += 1
            if failures == 2:
                raise SearchFailed(
                    f"{what} in the text of {search.key} takes more than the budget of "
                    f"{self.budget.cpu_s} s of CPU (ANALYZER_PARSE_CPU_S) or {self.budget.memory_bytes} "
                    "bytes of memory (ANALYZER_PARSE_MEMORY_BYTES)"
                )


class SnapshotSearch:
    """`analyzer.locate.text.Search` of one snapshot, answered by a `SearchPool`'s workers."""

    def __init__(self, pool: SearchPool, key: str, files: Mapping[str, bytes], repo: str) -> None:
        self.pool = pool
        self.key = key
        self.files = files
        self.repo = repo
        self.lock = threading.Lock()
        # Search worker -> the generation of its pool that was sent the files.
        self.sent: dict[int, int] = {}

    def holders(self, name: str, within: tuple[str, ...] | None) -> frozenset[str]:
        what = f"looking for {shown(name)}"
        found = self.pool.call(self, partial(_holders, name=name, within=within), what)
        assert isinstance(found, frozenset)
        return found

    def suggest(self, parts: list[str]) -> list[str]:
        name = ".".join(parts)
        from analyzer.errors import WorkersUnavailable  # see SearchPool.call

        try:
            ask = partial(_suggest, parts=parts)
            names = self.pool.call(self, ask, f"looking for names close to {shown(name)}")
        except (SearchFailed, WorkersUnavailable) as exc:
            logger.warning("no close names offered: %s", exc)
            return []
        assert isinstance(names, list)
        return names
