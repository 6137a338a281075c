"""The names `/analyze/function` accepts for a job: listed module by module, paged, filtered.

A listing is built lazily, in a stable order (modules in dotted order, then path, then line), so
a page costs only the files it shows: the first page of a stdlib-sized snapshot parses a handful
of files, not two thousand. Files are parsed by the snapshot's own `SnapshotIndex` (the tables
are the resolver's, shared with lookups and the warm-up), and each entry's short name is the
shortest suffix the resolver itself maps back to that definition, so every name shown works.
The work of one page runs in a thread (the parsing itself in the index's parse workers) with a
time budget: a filter that matches little returns
a short (even empty) page with a cursor to go on from, instead of parsing the whole repository
in one request.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from analyzer.errors import BadInput, SnapshotUnavailable
from analyzer.jobs import JobStore, check_job_id
from analyzer.locate import MAX_NAME_CHARS, LookupFailed, SnapshotIndex
from analyzer.locate.files import SourceFile
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from servicekit.logs import bind_job_id

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Seconds of parsing one page may spend before it answers with what it has and a cursor.
PAGE_BUDGET_S = 0.25
# Seconds the first page of a newly loaded snapshot may take to prepare in the background.
PREPARE_BUDGET_S = 2.0
# Snapshots whose listing state is kept (the snapshot cache decides what stays loaded).
_KEPT = 8
_CURSOR = re.compile(r"(\d{1,9}):(\d{1,9})")


class FunctionName(msgspec.Struct, kw_only=True, frozen=True):
    # The shortest dotted name that `/analyze/function` resolves to this definition.
    name: str
    # Its module's importable dotted name (from the source root, if any) and the qualified name.
    full_name: str
    path: str
    line: int


class FunctionPage(msgspec.Struct, kw_only=True, frozen=True):
    job_id: str
    snapshot: str
    functions: list[FunctionName]
    # Pass as `cursor` for the next page; None when the listing is complete.
    next_cursor: str | None


class InvalidListing(BadInput):
    """A limit, cursor or filter no listing can take."""


@dataclass(frozen=True, slots=True)
class Query:
    prefix: str
    contains: str
    limit: int
    file_position: int
    entry_position: int

    @classmethod
    def checked(cls, prefix: str, contains: str, limit: int, cursor: str) -> Query:
        """The query, or InvalidListing (422) that says which parameter is wrong."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidListing(f"limit must be 1 to {MAX_LIMIT}, got {limit}")
        for label, value in (("prefix", prefix), ("contains", contains)):
            if len(value) > MAX_NAME_CHARS or not value.isprintable():
                raise InvalidListing(f"{label} must be at most {MAX_NAME_CHARS} printable characters")
        position = (0, 0)
        if cursor:
            match = _CURSOR.fullmatch(cursor)
            if match is None:
                raise InvalidListing(f"cursor {cursor[:40]!r} is not one a page gave")
            position = (int(match[1]), int(match[2]))
        return cls(prefix.strip(), contains.strip().lower(), limit, *position)


class _Listing:
    """One snapshot's files in listing order, and the entries of the files listed so far."""

    def __init__(self, index: SnapshotIndex) -> None:
        self.index = index
        # Stubs declare what `.py` files implement: the implementation is what gets reviewed.
        files = [f for f in index.source_files() if f.path.endswith(".py")]
        self.files: list[SourceFile] = sorted(files, key=lambda f: (f.display_module, f.path))
        self._entries: dict[str, list[FunctionName]] = {}
        self._lock = threading.Lock()

    def page(self, query: Query, budget_s: float) -> tuple[list[FunctionName], str | None]:
        """Up to `query.limit` entries from the query's position, and the cursor after them."""
        deadline = time.monotonic() + budget_s
        found: list[FunctionName] = []
        position, skip = query.file_position, query.entry_position
        while position < len(self.files):
            file = self.files[position]
            entries = self._matching(file, query) if self._may_match(file, query) else []
            for number, entry in enumerate(entries[skip:], start=skip):
                if len(found) == query.limit:
                    return found, f"{position}:{number}"
                found.append(entry)
            position, skip = position + 1, 0
            if time.monotonic() > deadline and position < len(self.files):
                return found, f"{position}:0"
        return found, None

    @staticmethod
    def _may_match(file: SourceFile, query: Query) -> bool:
        """Whether a file's names can start with the prefix, judged by its module alone (no parse)."""
        if not query.prefix:
            return True
        module = ".".join(file.display_module)
        return module.startswith(query.prefix) or query.prefix.startswith(module + ".")

    def _matching(self, file: SourceFile, query: Query) -> list[FunctionName]:
        return [
            entry
            for entry in self._of(file)
            if entry.full_name.startswith(query.prefix) and query.contains in entry.full_name.lower()
        ]

    def _of(self, file: SourceFile) -> list[FunctionName]:
        with self._lock:
            known = self._entries.get(file.path)
        if known is not None:
            return known
        entries: list[FunctionName] = []
        module = list(file.display_module)
        for qualname, spans in self.index.definitions(file.path).items():
            line = spans[0].start_line
            full = ".".join([*module, qualname])
            entries.append(
                FunctionName(
                    name=self._shortest(module, qualname, file, line) or full,
                    full_name=full,
                    path=file.path,
                    line=line,
                )
            )
        entries.sort(key=lambda e: (e.line, e.full_name))
        with self._lock:
            self._entries[file.path] = entries
        return entries

    def _shortest(self, module: list[str], qualname: str, file: SourceFile, line: int) -> str | None:
        """The shortest `<module suffix>.<qualname>` the resolver maps to this very definition."""
        whole = [*module, qualname] if module else [qualname]
        tried = [".".join(whole[start:]) for start in range(len(module) - 1, 0, -1)]
        tried.append(".".join(whole))
        tried.append(".".join([*file.module, qualname]))  # from the repository root: the exact tier
        for name in tried:
            try:
                found = self.index.find(name)
            except LookupFailed:
                continue
            if found.path == file.path and found.start_line == line:
                return name
        return None


class FunctionLister:
    """Answers GET /analyze/jobs/{job_id}/functions from the job store and the snapshot cache."""

    def __init__(self, jobs: JobStore, snapshots: SnapshotCache, *, budget_s: float = PAGE_BUDGET_S) -> None:
        self.jobs = jobs
        self.snapshots = snapshots
        self.budget_s = budget_s
        self._listings: OrderedDict[str, _Listing] = OrderedDict()
        self._preparing: set[asyncio.Task[object]] = set()

    def prepare(
        self,
        loaded: LoadedSnapshot,
        still_cached: Callable[[], bool],
        *,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Work out the first page of a snapshot just loaded into the cache (on the fetcher's completed
        event with ANALYZER_PRELOAD, or by a first lookup), in a thread, so the first listing a
        person asks for is already there. With `after` (the index warm-up), only once that is
        done: the warm-up parses every file anyway, and the page then costs no parse of its own.
        """
        if not still_cached():
            return
        listing = self._listing(loaded)
        first = Query.checked("", "", DEFAULT_LIMIT, "")

        async def work_out() -> object:
            if after is not None:
                await after()
            if not still_cached():
                return None
            return await asyncio.to_thread(listing.page, first, PREPARE_BUDGET_S)

        task: asyncio.Task[object] = asyncio.create_task(work_out(), name=f"list functions {loaded.key}")
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)

    async def close(self) -> None:
        """Stop the pages waiting for a warm-up; wait for those being worked out (each ends within
        PREPARE_BUDGET_S)."""
        for task in self._preparing:
            task.cancel()
        if self._preparing:
            await asyncio.gather(*self._preparing, return_exceptions=True)

    async def page(self, job_id: str, *, prefix: str, contains: str, limit: int, cursor: str) -> FunctionPage:
        """One page of the job's function names.

        Raises InvalidJobId / InvalidListing (422), JobNotFound (404), JobNotReady / JobFailed (409,
        at once: a listing does not wait for the fetch), SnapshotUnavailable (409), NatsUnavailable (503).
        """
        bind_job_id(check_job_id(job_id))
        query = Query.checked(prefix, contains, limit, cursor)
        record = await self.jobs.wait_ready(job_id, 0)
        if record.snapshot is None:
            raise SnapshotUnavailable(f"job {job_id} is ready but names no stored snapshot; start a new job")
        loaded = await self.snapshots.get(record.snapshot)
        listing = self._listing(loaded)
        # Parsing holds the CPU: in a thread, within a budget, so the loop keeps serving others.
        found, next_cursor = await asyncio.to_thread(listing.page, query, self.budget_s)
        return FunctionPage(job_id=job_id, snapshot=loaded.key, functions=found, next_cursor=next_cursor)

    def _listing(self, loaded: LoadedSnapshot) -> _Listing:
        listing = self._listings.get(loaded.key)
        if listing is None or listing.index is not loaded.index:
            listing = _Listing(loaded.index)
            self._listings[loaded.key] = listing
            while len(self._listings) > _KEPT:
                self._listings.popitem(last=False)
        self._listings.move_to_end(loaded.key)
        return listing
