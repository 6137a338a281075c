"""The names `/analyze/function` accepts for a job: listed module by module, paged, filtered.

A listing is built lazily, in a stable order (modules in dotted order, then path, then line), so
a page costs only the files it reaches and the names it shows (analyzer.listing). The work runs
in the listing's own low-priority worker process, fed by a thread of its own
(analyzer.listing_worker), never in the lookups' threads or parse and search workers, and one
snapshot's listing is kept there once however many pages and preloads ask. A page answers within
`ANALYZER_FUNCTIONS_PAGE_S` (once its snapshot is loaded): with what it found by then and a cursor
to go on from, even an empty page whose cursor is the one it was asked while the worker is still
parsing a large file. A snapshot's listing holds at most `ANALYZER_FUNCTIONS_MAX_NAMES` names.
"""

# Names say what went wrong (as in analyzer.errors), not that it is an error.
# ruff: noqa: N818

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from analyzer.errors import AnalyzerError, BadInput, SnapshotUnavailable
from analyzer.jobs import JobStore, check_job_id
from analyzer.listing import DEFAULT_LIMIT, MAX_LIMIT, FunctionName, InvalidListing, Query
from analyzer.listing_worker import ListingBrokenError, ListingTooLargeError, ListingWorker
from analyzer.parsing import ParseBudget
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from servicekit.logs import bind_job_id

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "FunctionLister",
    "FunctionName",
    "FunctionPage",
    "InvalidListing",
    "ListingFailed",
    "ListingOverBudget",
    "Query",
    "TooManyFunctions",
]

logger = logging.getLogger("analyzer.functions")

# Defaults of ANALYZER_FUNCTIONS_PAGE_S and ANALYZER_FUNCTIONS_MAX_NAMES.
PAGE_BUDGET_S = 0.25
MAX_NAMES = 1_000_000
# Seconds the first page of a newly loaded snapshot may take to prepare in the background.
PREPARE_BUDGET_S = 2.0


class FunctionPage(msgspec.Struct, kw_only=True, frozen=True):
    job_id: str
    snapshot: str
    functions: list[FunctionName]
    # Pass as `cursor` for the next page; None when the listing is complete.
    next_cursor: str | None


class TooManyFunctions(BadInput):
    """The snapshot defines more names than a listing may hold (ANALYZER_FUNCTIONS_MAX_NAMES)."""


class ListingOverBudget(BadInput):
    """Listing the snapshot needs more memory than its worker may have (ANALYZER_PARSE_MEMORY_BYTES)."""


class ListingFailed(AnalyzerError):
    """The listing's worker ended twice on this snapshot, for no reason a file earned: ask again."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE


class FunctionLister:
    """Answers GET /analyze/jobs/{job_id}/functions from the job store, the snapshot cache and the
    listing's worker."""

    def __init__(
        self,
        jobs: JobStore,
        snapshots: SnapshotCache,
        worker: ListingWorker,
        *,
        budget_s: float = PAGE_BUDGET_S,
        max_names: int = MAX_NAMES,
    ) -> None:
        self.jobs = jobs
        self.snapshots = snapshots
        self.worker = worker
        self.budget_s = budget_s
        self.max_names = max_names
        self._preparing: set[asyncio.Task[object]] = set()
        self._closed = False

    @classmethod
    def of(cls, settings: Settings, jobs: JobStore, snapshots: SnapshotCache) -> FunctionLister:
        """The lister the analyzer's settings give, with a worker of its own (spawned on first use)."""
        worker = ListingWorker(
            ParseBudget.of(settings),
            max_entries=settings.analyzer_snapshot_cache_entries,
            max_bytes=settings.analyzer_snapshot_cache_bytes,
        )
        return cls(
            jobs,
            snapshots,
            worker,
            budget_s=settings.analyzer_functions_page_s,
            max_names=settings.analyzer_functions_max_names,
        )

    def prepare(
        self,
        loaded: LoadedSnapshot,
        still_cached: Callable[[], bool],
        *,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Work out the first page of a snapshot just loaded into the cache (on the fetcher's completed
        event with ANALYZER_PRELOAD, or by a first lookup) in the listing's worker, within
        PREPARE_BUDGET_S, so the first listing a person asks for is already there. With `after`
        (the index warm-up), only once that is done: background work one after the other.
        """
        if self._closed or not still_cached():
            return
        first = Query.checked("", "", DEFAULT_LIMIT, "")

        async def work_out() -> object:
            if after is not None:
                await after()
            if not still_cached():
                return None
            try:
                return await self._page(loaded, first, PREPARE_BUDGET_S)
            except AnalyzerError as exc:
                logger.warning(
                    "snapshot %s: first page of functions not prepared: %s", loaded.key, exc.detail
                )
                return None

        task: asyncio.Task[object] = asyncio.create_task(work_out(), name=f"list functions {loaded.key}")
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)

    async def close(self) -> None:
        """Stop the first pages being prepared and the listing's worker (killed: a stop never waits
        for a listing)."""
        self._closed = True
        for task in self._preparing:
            task.cancel()
        await self.worker.close()
        if self._preparing:
            await asyncio.gather(*self._preparing, return_exceptions=True)

    async def page(self, job_id: str, *, prefix: str, contains: str, limit: int, cursor: str) -> FunctionPage:
        """One page of the job's function names: within the page budget once the snapshot is loaded,
        with a `next_cursor` to go on from when the work takes longer.

        Raises InvalidJobId / InvalidListing (422), JobNotFound (404), JobNotReady / JobFailed (409,
        at once: a listing does not wait for the fetch), SnapshotUnavailable (409), NatsUnavailable
        (503), TooManyFunctions / ListingOverBudget (422), ListingFailed (503).
        """
        bind_job_id(check_job_id(job_id))
        query = Query.checked(prefix, contains, limit, cursor)
        record = await self.jobs.wait_ready(job_id, 0)
        if record.snapshot is None:
            raise SnapshotUnavailable(f"job {job_id} is ready but names no stored snapshot; start a new job")
        loaded = await self.snapshots.get(record.snapshot)
        found, next_cursor = await self._page(loaded, query, self.budget_s)
        return FunctionPage(job_id=job_id, snapshot=loaded.key, functions=found, next_cursor=next_cursor)

    async def _page(
        self, loaded: LoadedSnapshot, query: Query, budget_s: float
    ) -> tuple[list[FunctionName], str | None]:
        try:
            page = await self.worker.page(
                loaded.key,
                loaded.snapshot.files,
                loaded.snapshot.repo,
                query,
                budget_s=budget_s,
                max_names=self.max_names,
            )
        except ListingTooLargeError as exc:
            raise TooManyFunctions(
                f"the functions of {loaded.key} are too many to list: {exc.path} takes them to "
                f"{exc.names}, over the bound of {exc.max_names} names (ANALYZER_FUNCTIONS_MAX_NAMES); "
                "ask for a function by name, or raise the setting"
            ) from exc
        except ListingBrokenError as exc:
            if exc.over_budget:
                raise ListingOverBudget(str(exc)) from exc
            raise ListingFailed(f"{exc}; ask again") from exc
        if page is None:  # not answered in time: the work goes on, and the same cursor finds it
            return [], query.cursor
        return page.functions, page.next_cursor
