"""The function listing's worker: one low-priority process that keeps snapshots' listings, fed by
one thread of its own, never the lookups' threads or processes.

Listing a file of 75k definitions used to take 28 s of a lookup thread (95 s under load), and
several at once took every thread of the event loop's default executor: a review of another job
waited minutes, and a stop waited for them. So a `ListingWorker` answers pages in a process of
its own (spawned on first use, `os.nice` 10 like the index warm-up, its address space capped at
`ANALYZER_PARSE_MEMORY_BYTES` like the parse workers), which keeps each snapshot's files, index
(its own: the parsing and text searches of a listing never queue in the lookups' workers) and
`analyzer.listing.Listing`, so a snapshot is sent and parsed once however many pages ask. The
blocking pipe work happens in one thread of the worker's own; pages (and the background first
pages of new snapshots) take turns there, one at a time.

A page waits at most until its deadline (plus `GRACE_S` for the answer to cross): when the
worker has not answered by then (a long file parse, or another snapshot's page before it), the
caller gets None and answers an empty page whose cursor is the one it was asked, while the worker
goes on to the end of its step; the next page finds that work done. Each file is parsed within
the parse budget (`ANALYZER_PARSE_CPU_S`): a file that makes the kernel end the worker (SIGXCPU)
is named by the worker before it starts, set aside as unparsable for that snapshot from then on,
and the page is tried again in a fresh worker. Only that verdict is kept: a worker ended by
anything else (killed, out of memory) blames no file; the page is tried once more, then
ListingBrokenError.

`close` kills the worker: a stop never waits for a listing.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from analyzer.listing import FunctionName, Listing, Query, TooManyNamesError
from analyzer.locate import ParsedFile, SnapshotIndex
from analyzer.parsing import ParseBudget, chunks, parse_within_budget, start_worker
from analyzer.worker_processes import WORKERS

logger = logging.getLogger("analyzer.listing")

# How much lower the worker's priority is than the server's (os.nice increment), as the warm-up's.
WORKER_NICENESS = 10
# Seconds a page waits past its deadline for the worker's answer to cross the pipe.
GRACE_S = 0.1
# Bytes of files sent at a time (each send pickles in the listing's thread, holding the GIL).
SEND_BYTES = 1024 * 1024
# How many times one page may lose its worker before it gives up.
_TRIES = 3


class ListingBrokenError(Exception):
    """The worker ended twice on a page for no reason a file earned (killed), or ran out of memory
    (`over_budget`: so would a retry)."""

    def __init__(self, detail: str, *, over_budget: bool = False) -> None:
        super().__init__(detail)
        self.over_budget = over_budget


class ListingTooLargeError(Exception):
    """The snapshot's listing would hold more than its bound on names (TooManyNamesError, from the worker)."""

    def __init__(self, path: str, names: int, max_names: int) -> None:
        super().__init__(path, names, max_names)
        self.path = path
        self.names = names
        self.max_names = max_names


@dataclass(frozen=True, slots=True)
class Page:
    functions: list[FunctionName]
    next_cursor: str | None


# -- in the worker -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Kept:
    listing: Listing
    size: int
    # Files that ended a worker over the CPU budget: never parsed again for this snapshot.
    over_budget: set[str] = field(default_factory=set)


def _parse_in_worker(
    data: bytes, path: str, *, conn: Connection, budget: ParseBudget, over_budget: set[str]
) -> ParsedFile:
    if path in over_budget:
        return budget.too_costly()
    # Named before the parse: if the kernel ends the worker during it, the server knows which.
    conn.send(("parsing", path))
    return parse_within_budget({path: data}, budget)[path]


def serve(conn: Connection, budget: ParseBudget, max_entries: int, max_bytes: int, niceness: int) -> None:
    """The worker's loop: ("files", key, files) messages, then ("page", call, key, repo, file
    count, query, deadline, max names, over-budget paths) answered by ("answer", call, answer),
    with ("parsing", path) before each file's parse. Ends when the server closes the pipe."""
    start_worker(budget.memory_bytes, niceness)
    kept: OrderedDict[str, _Kept] = OrderedDict()
    receiving: dict[str, dict[str, bytes]] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:
            kept.clear()
            receiving.clear()
            continue
        if message[0] == "files":
            _, key, files = message
            try:
                receiving.setdefault(key, {}).update(files)
            except MemoryError:
                kept.clear()
                receiving.clear()
            continue
        _, call, key, repo, count, query, deadline, max_names, over_budget = message
        answer: tuple[object, ...]
        try:
            entry = kept.get(key)
            if entry is None:
                files = receiving.pop(key, {})
                if len(files) != count:
                    answer = ("not kept",)
                    conn.send(("answer", call, answer))
                    continue
                entry = _keep(kept, key, files, repo, conn, budget, max_entries, max_bytes, max_names)
            kept.move_to_end(key)
            entry.over_budget.update(over_budget)
            found, cursor = entry.listing.page(query, deadline)
            answer = ("page", found, cursor)
        except TooManyNamesError as exc:
            answer = ("too many", exc.path, exc.names, exc.max_names)
        except MemoryError:
            kept.clear()
            receiving.clear()
            answer = ("memory",)
        conn.send(("answer", call, answer))


def _keep(
    kept: OrderedDict[str, _Kept],
    key: str,
    files: dict[str, bytes],
    repo: str,
    conn: Connection,
    budget: ParseBudget,
    max_entries: int,
    max_bytes: int,
    max_names: int,
) -> _Kept:
    size = sum(map(len, files.values()))
    total = sum(entry.size for entry in kept.values())
    # Room first: the worker's memory is capped, and the one about to come is the one needed.
    while kept and (len(kept) >= max_entries or total + size > max_bytes):
        _, evicted = kept.popitem(last=False)
        total -= evicted.size
    over_budget: set[str] = set()
    parse = partial(_parse_in_worker, conn=conn, budget=budget, over_budget=over_budget)
    entry = _Kept(Listing(SnapshotIndex(files, repo, parse=parse), max_names=max_names), size, over_budget)
    kept[key] = entry
    return entry


# -- in the server -------------------------------------------------------------------------------

# What the listing's thread answers instead of a page: the worker has not answered in time.
_NOT_YET = object()


class ListingWorker:
    """The function listing's worker process and its thread (both started on first use).

    `page` is for the event loop. Pages take turns: one at a time in the worker.
    """

    def __init__(
        self, budget: ParseBudget, *, max_entries: int, max_bytes: int, niceness: int = WORKER_NICENESS
    ) -> None:
        self.budget = budget
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._niceness = niceness
        # One thread: the pipe is used by one call at a time, and pages queue here in order.
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="function-listing"
        )
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        # Snapshot keys the current worker was sent.
        self._sent: set[str] = set()
        # (call, snapshot key) of the page whose answer the worker owes: one at a time.
        self._owed: tuple[int, str] | None = None
        # (snapshot key, path) of the file the worker said it is parsing, until it answers.
        self._parsing: tuple[str, str] | None = None
        self._over_budget: dict[str, set[str]] = {}
        self._calls = itertools.count()
        self._closed = False
        self._lock = threading.Lock()

    async def page(
        self,
        key: str,
        files: Mapping[str, bytes],
        repo: str,
        query: Query,
        *,
        budget_s: float,
        max_names: int,
    ) -> Page | None:
        """The page of `query` in the snapshot `key`, or None when the worker has not answered
        within `budget_s` (+ GRACE_S): its work goes on, and a later page finds it done.

        Raises ListingTooLargeError (the bound on names), ListingBrokenError (the worker ended
        twice on it, or ran out of memory), RuntimeError once closed.
        """
        import asyncio  # here, not at the top: the worker process imports this module too

        deadline = time.monotonic() + budget_s
        future = self._thread.submit(self._call, key, files, repo, query, deadline, max_names)
        try:
            answer = await asyncio.wait_for(asyncio.wrap_future(future), budget_s + GRACE_S)
        except TimeoutError:
            return None  # waiting in turn: dropped; under way: it ends at the deadline
        return answer if isinstance(answer, Page) else None

    async def close(self) -> None:
        """Kill the worker (a page under way gets None) and stop the thread; nothing starts after."""
        import asyncio  # here, not at the top: the worker process imports this module too

        with self._lock:
            self._closed = True
            process = self._process
        if process is not None:
            process.kill()
        self._thread.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._thread.shutdown, wait=True)
        if process is not None:
            await asyncio.to_thread(process.join)

    # -- in the listing's thread ---------------------------------------------------------------

    def _call(
        self, key: str, files: Mapping[str, bytes], repo: str, query: Query, deadline: float, max_names: int
    ) -> Page | object:
        breaks = 0
        for _ in range(_TRIES):
            try:
                return self._try(key, files, repo, query, deadline, max_names)
            except RuntimeError:
                if self._closed:  # closed before it could start
                    return _NOT_YET
                raise
            except (EOFError, OSError):
                if self._closed:  # killed by close()
                    return _NOT_YET
                if self._ended() is None:  # no file earned it: once more, then give up
                    breaks += 1
                    if breaks == 2:
                        raise ListingBrokenError(
                            f"the function listing's worker stopped twice while listing {key}"
                        ) from None
        raise ListingBrokenError(f"the function listing's worker stopped {_TRIES} times while listing {key}")

    def _try(
        self,
        key: str,
        files: Mapping[str, bytes],
        repo: str,
        query: Query,
        deadline: float,
        max_names: int,
        *,
        resent: bool = False,
    ) -> Page | object:
        conn = self._connection()
        if self._owed is not None and self._receive(conn, deadline) is _NOT_YET:
            return _NOT_YET  # still busy with a page whose caller stopped waiting
        python = {path: data for path, data in files.items() if path.endswith((".py", ".pyi"))}
        if key not in self._sent:
            for group in chunks(python, SEND_BYTES):
                conn.send(("files", key, group))
            self._sent.add(key)
        call = next(self._calls)
        over_budget = frozenset(self._over_budget.get(key, ()))
        conn.send(("page", call, key, repo, len(python), query, deadline, max_names, over_budget))
        self._owed = (call, key)
        answer = self._receive(conn, deadline + GRACE_S)
        if answer is _NOT_YET:
            return _NOT_YET
        assert isinstance(answer, tuple)
        kind = answer[0]
        if kind == "page":
            return Page(functions=answer[1], next_cursor=answer[2])
        if kind == "not kept" and not resent:  # evicted from the worker since: send it again
            self._sent.discard(key)
            return self._try(key, files, repo, query, deadline, max_names, resent=True)
        if kind == "too many":
            raise ListingTooLargeError(*answer[1:])
        # Out of memory (or sent twice and still not all there): the worker dropped what it kept.
        self._sent.clear()
        raise ListingBrokenError(
            f"listing the functions of {key} needs more memory than the worker's "
            f"{self.budget.memory_bytes} bytes (ANALYZER_PARSE_MEMORY_BYTES)",
            over_budget=True,
        )

    def _receive(self, conn: Connection, until: float) -> object:
        """The answer the worker owes (its payload), or _NOT_YET if none came by `until`. Raises
        EOFError / OSError when the worker ended."""
        while conn.poll(max(0.0, until - time.monotonic())):
            message = conn.recv()
            if message[0] == "parsing":
                if self._owed is not None:  # always, as the worker parses only for a page
                    self._parsing = (self._owed[1], message[1])
                    logger.debug("function listing of %s: parsing %s", *self._parsing)
                continue
            _, call, answer = message
            self._parsing = None
            if self._owed is not None and call == self._owed[0]:
                self._owed = None
                return answer
        return _NOT_YET

    def _connection(self) -> Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError("the function listing is closed")
            if self._conn is not None:
                return self._conn
            ours, theirs = WORKERS.Pipe()
            process = WORKERS.Process(
                target=serve,
                args=(theirs, self.budget, self._max_entries, self._max_bytes, self._niceness),
                name="function-listing",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._process, self._conn = process, ours
            self._sent.clear()
            self._owed = None
            return ours

    def _ended(self) -> tuple[str, str] | None:
        """After the pipe broke: forget the worker; the (key, path) blamed if the kernel ended it
        over the CPU budget while parsing that file, else None."""
        with self._lock:
            process, conn = self._process, self._conn
            self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(5.0)
            if process.is_alive():  # the pipe broke but the worker did not end: it is of no use
                process.kill()
                process.join()
        parsing, self._parsing = self._parsing, None
        code = process.exitcode if process is not None else None
        if code == -signal.SIGXCPU and parsing is not None:
            key, path = parsing
            self._over_budget.setdefault(key, set()).add(path)
            logger.warning(
                "function listing of %s: %s set aside, its parse took more than %d s of CPU "
                "(ANALYZER_PARSE_CPU_S)",
                key,
                path,
                self.budget.cpu_s,
            )
            return parsing
        logger.warning("the function listing's worker ended (exit code %s); a fresh one takes over", code)
        return None
