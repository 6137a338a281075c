"""What the analyzer's handlers use, opened in its lifespan and closed whatever happens.

`lifespan(settings)` opens each resource into one ResourceStack (servicekit.lifespan), one line
each, in the order they depend on each other: the NATS connection, the worker pools, the gateway
client, then (once JetStream answers) the job store, the snapshot cache, the function listing,
the analysis and the preloader. If any of them fails to open (JetStream never ready, say), those
already open are closed in reverse order and that failure is the error reported; a stop closes
them all the same way. What the handlers use goes into the app's state under the names below,
and reaches them through `DEPENDENCIES` (Litestar's `Provide`), never by a state read in a handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats.errors
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from analyzer.analysis import Analysis
from analyzer.context import ContextBuilder
from analyzer.functions import FunctionLister
from analyzer.jobs import JobStore
from analyzer.parsing import ParseBudget, ParserPool
from analyzer.preload import Preloader
from analyzer.review import GatewayClient
from analyzer.scan.model import PieceChecker
from analyzer.scan.pieces import GatewayPieceChecker
from analyzer.scan.routes import SCANS as SCAN_SERVICE
from analyzer.scan.service import ScanService
from analyzer.searching import SearchPool
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from analyzer.typecheck import TypeCheckBudget, TypeChecks
from analyzer.warmup import WARM_DELAY_S, IndexWarmer
from jobs_contract import JobStores, ensure_jetstream
from servicekit.lifespan import ResourceStack, closing_async, closing_in_thread, started
from servicekit.nats_connect import connect_nats, when_jetstream_ready

NATS_LOG = logging.getLogger("analyzer.nats")

# The names under which the lifespan keeps what it opened in the app's state. The objects need the
# NATS connection to be built, so they cannot be made in `create_app` and handed to `Provide`
# directly as the gateway's are; handlers get each one through `Provide`, never from the state.
# (Litestar's own SQLAlchemy plugin does the same: its lifespan puts the engine in `app.state`
# under a named key, and its `Provide(provide_engine)` reads `state[key]`.)
NATS = "nc"
JOBS = "jobs"
SNAPSHOTS = "snapshots"
FUNCTIONS = "functions"
ANALYSIS = "analysis"
# None when ANALYZER_WARM_INDEX is off.
WARMER = "warmer"
# The scans (analyzer.scan): their routes name it.
SCANS = SCAN_SERVICE


def provide(name: str) -> Provide:
    """A dependency on what the lifespan opened under `name`."""

    def opened(state: State) -> Any:
        return state[name]

    return Provide(opened, sync_to_thread=False)


# What the handlers may ask for by name. One dependency per handler: Litestar resolves two or more
# at one level in an anyio task group, a task each (see gateway/resources.py).
DEPENDENCIES = {name: provide(name) for name in (NATS, JOBS, FUNCTIONS, ANALYSIS, SCANS)}


def lifespan(
    settings: Settings, scan_checker: PieceChecker | None = None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The app's lifespan: everything `open_resources` opens, in the app's state while it serves."""

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        async with ResourceStack() as stack:
            app.state.update(await open_resources(stack, settings, scan_checker))
            yield

    return resources


@dataclass(frozen=True)
class Workers:
    """The analyzer's worker processes and the background work on snapshots (`open_workers`)."""

    parser: ParserPool
    searcher: SearchPool
    warmer: IndexWarmer | None  # None when ANALYZER_WARM_INDEX is off
    typechecks: TypeChecks | None  # None unless the review context and type checks are on

    def snapshot_loaded(
        self, loaded: LoadedSnapshot, still_cached: Callable[[], bool], functions: FunctionLister
    ) -> None:
        """What a snapshot's load starts in the background. The search worker is spawned once a
        snapshot is there to search, after the request that loaded it is answered (as the
        warm-up's): a first 404 then does not wait for it."""
        asyncio.get_running_loop().call_later(WARM_DELAY_S, self.searcher.start)
        if self.typechecks is not None:  # the whole snapshot's type check, once
            self.typechecks.start(loaded.key, loaded.snapshot.files)
        warmer = self.warmer
        if warmer is None:
            functions.prepare(loaded, still_cached)
            return
        warmer.warm(loaded, still_cached)
        functions.prepare(loaded, still_cached, after=lambda: warmer.wait(loaded.key))


async def open_workers(stack: ResourceStack, settings: Settings) -> Workers:
    """The worker pools and background checks, opened into `stack` (workers spawn on first use)."""
    budget = ParseBudget.of(settings)
    # Two workers: a lookup whose file takes its whole budget does not hold up the others'.
    parser = await stack.enter_async_context(closing_in_thread(ParserPool(budget, workers=2)))
    # The searches of a snapshot's whole text (which files may define a name, a 404's close
    # names), in a worker that keeps what it built: as many snapshots as the cache.
    searcher = await stack.enter_async_context(
        closing_in_thread(
            SearchPool(
                budget,
                max_entries=settings.analyzer_snapshot_cache_entries,
                max_bytes=settings.analyzer_snapshot_cache_bytes,
            )
        )
    )
    warmer = (
        await stack.enter_async_context(closing_async(IndexWarmer(budget)))
        if settings.analyzer_warm_index
        else None
    )
    typechecks = (
        await stack.enter_async_context(aclosing(type_checks(settings)))
        if settings.analyzer_review_context and settings.analyzer_typecheck_enabled
        else None
    )
    return Workers(parser, searcher, warmer, typechecks)


async def open_resources(
    stack: ResourceStack, settings: Settings, scan_checker: PieceChecker | None = None
) -> dict[str, Any]:
    """Open what the handlers use into `stack` (which closes it) and return it by state name.
    `scan_checker` checks the scans' pieces (None: through the gateway, GatewayPieceChecker).

    Raises NatsUnreachable when NATS, or its JetStream, does not answer within NATS_START_WAIT_S;
    what opened before is closed by the stack then, as on any other failure.
    """
    nc = await stack.enter_async_context(nats_connection(settings))
    workers = await open_workers(stack, settings)
    reviews = await stack.enter_async_context(GatewayClient.of(settings))

    def on_loaded(loaded: LoadedSnapshot, still_cached: Callable[[], bool]) -> None:
        # Called on loads, which only happen once the app serves: `functions` is bound by then.
        workers.snapshot_loaded(loaded, still_cached, functions)

    js = nc.jetstream(timeout=settings.nats_timeout_s)
    stores = await jetstream_ready(js, settings)
    jobs = JobStore(
        js,
        stores.kv,
        ready_cache_s=settings.analyzer_ready_cache_s,
        deadline_s=settings.nats_request_deadline_s,
    )
    snapshots = SnapshotCache(
        js,
        stores.repos,
        max_entries=settings.analyzer_snapshot_cache_entries,
        max_bytes=settings.analyzer_snapshot_cache_bytes,
        timeout_s=settings.nats_timeout_s,
        deadline_s=settings.nats_request_deadline_s,
        on_loaded=on_loaded,
        parse=workers.parser.parse,
        search=workers.searcher.for_snapshot,
    )
    functions = await stack.enter_async_context(closing_async(FunctionLister.of(settings, jobs, snapshots)))
    in_context = settings.analyzer_review_context
    context = ContextBuilder(uses_max_chars=settings.analyzer_context_max_chars) if in_context else None
    analysis = Analysis(
        jobs,
        snapshots,
        reviews,
        wait_timeout_s=settings.analyzer_wait_timeout_s,
        source_max_chars=settings.analyzer_source_max_chars,
        context=context,
        typechecks=workers.typechecks,
        typecheck_wait_s=settings.analyzer_typecheck_wait_s,
    )
    if settings.analyzer_preload:
        preloader = Preloader(nc, jobs, snapshots)  # snapshots loaded as their jobs complete
        await stack.enter_async_context(started(preloader.start, preloader.stop))
    checker = scan_checker or GatewayPieceChecker.of(
        settings, parser=workers.parser, gateway=reviews, context=context, typechecks=workers.typechecks
    )
    scans = await stack.enter_async_context(
        ScanService(nc, jobs, snapshots, checker, settings, repos=stores.repos)
    )
    return {
        NATS: nc,
        JOBS: jobs,
        SNAPSHOTS: snapshots,
        FUNCTIONS: functions,
        ANALYSIS: analysis,
        WARMER: workers.warmer,
        SCANS: scans,
    }


@asynccontextmanager
async def nats_connection(settings: Settings) -> AsyncIterator[NatsClient]:
    """The analyzer's NATS connection, drained at the end (closed when it cannot be drained).

    Raises NatsUnreachable when NATS does not answer within NATS_START_WAIT_S.
    """
    nc = await connect_nats(
        settings.nats_url,
        name="codereview-analyzer",
        timeout_s=settings.nats_timeout_s,
        start_wait_s=settings.nats_start_wait_s,
        log=NATS_LOG,
    )
    try:
        yield nc
    finally:
        try:
            await nc.drain()
        except nats.errors.Error:  # reconnecting or already closed: nothing left to flush
            await nc.close()


def type_checks(settings: Settings) -> TypeChecks:
    """The type checks of whole snapshots, as many kept as the snapshot cache holds."""
    return TypeChecks(
        TypeCheckBudget.of(settings),
        concurrency=settings.analyzer_typecheck_concurrency,
        entries=settings.analyzer_snapshot_cache_entries,
    )


async def jetstream_ready(js: JetStreamContext, settings: Settings) -> JobStores:
    """The jobs bucket and the repos store, once JetStream answers (NATS_START_WAIT_S at most).

    Raises NatsUnreachable when it never does.
    """
    return await when_jetstream_ready(
        lambda: ensure_jetstream(js),
        url=settings.nats_url,
        start_wait_s=settings.nats_start_wait_s,
        log=NATS_LOG,
    )


def stop_waiting(app: Litestar) -> None:
    """On SIGTERM (`python -m analyzer`): requests waiting for a job get 503 at once; the rest
    finish within SHUTDOWN_TIMEOUT_S."""
    jobs: JobStore | None = app.state.get(JOBS)
    if jobs is not None:  # None: the lifespan has not opened it yet
        jobs.stop_waiting()
