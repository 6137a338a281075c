"""The analyzer's HTTP API: start repository jobs, follow them, review one function of a fetched repository.

- `POST /analyze/start` `{"repo_url"}` -> 200 `{"job_id"}` (the fetch happens in the background, by a fetcher)
- `GET /analyze/jobs/{job_id}` -> the job record
- `POST /analyze/function` `{"job_id", "function_name"}` -> 200 `{"suggestions": [...]}`
- `GET /analyze/jobs/{job_id}/functions?prefix=&contains=&limit=&cursor=` -> a page of the names
  `/analyze/function` accepts for the job (analyzer.functions)
- `POST /analyze/findings` `{"job_id", "function_name"}` -> 200: the same review with its findings
  as data (rule, path, line, severity, fingerprint) and the function's place, for tools
- `GET /health` -> 200 while NATS is connected, else 503
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import nats.errors
from litestar import Litestar, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, TooManyRequestsException, ValidationException
from litestar.exceptions.responses import create_exception_response
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from nats.aio.client import Client as NatsClient
from openai import AsyncOpenAI, DefaultAioHttpClient

from analyzer.analysis import Analysis
from analyzer.context import ContextBuilder
from analyzer.errors import (
    AnalyzerError,
    Unauthorized,
    analyzer_error_handler,
    malformed_body,
    rate_limited_handler,
    refusal_handler,
    unexpected_error_handler,
    validation_error_handler,
)
from analyzer.functions import DEFAULT_LIMIT, FunctionLister, FunctionPage
from analyzer.jobs import JobStore, check_job_id
from analyzer.metrics import MetricsController, http_metrics
from analyzer.parsing import ParseBudget, ParserPool
from analyzer.preload import Preloader
from analyzer.repo_url import parse_repo_url
from analyzer.review import GatewayClient
from analyzer.scan.model import PieceChecker
from analyzer.scan.pieces import GatewayPieceChecker
from analyzer.scan.routes import SCAN_ROUTES, SCANS
from analyzer.scan.service import ScanService
from analyzer.searching import SearchPool
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from analyzer.typecheck import TypeCheckBudget, TypeChecks
from analyzer.warmup import WARM_DELAY_S, IndexWarmer
from jobs_contract import JobRecord, ensure_jetstream
from review_contract import Finding
from servicekit.access import access_middleware
from servicekit.bodies import require_utf8_body
from servicekit.logs import bind_job_id
from servicekit.nats_connect import connect_nats, when_jetstream_ready
from servicekit.request_id import current_request_id, request_id_middleware

# -- bodies (the seed endpoints' shapes are a fixed contract: no keys added, renamed or dropped) -------


class StartRequest(msgspec.Struct, kw_only=True, frozen=True):
    repo_url: str


class StartResponse(msgspec.Struct, kw_only=True, frozen=True):
    job_id: str


class FunctionRequest(msgspec.Struct, kw_only=True, frozen=True):
    job_id: str
    function_name: str


class FunctionResponse(msgspec.Struct, kw_only=True, frozen=True):
    suggestions: list[str]


class FunctionPlace(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    path: str
    start_line: int
    end_line: int


class FindingsResponse(msgspec.Struct, kw_only=True, frozen=True):
    """`/analyze/findings`: the review of `/analyze/function` and its findings as data."""

    function: FunctionPlace
    suggestions: list[str]
    findings: list[Finding]
    # True: the function was checked in its module, under the repository's configuration.
    in_context: bool


class Health(msgspec.Struct, kw_only=True, frozen=True):
    status: str
    nats: str


NATS_LOG = logging.getLogger("analyzer.nats")

# -- what the handlers use, opened in the lifespan ------------------------------------------------

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


def _opened(name: str) -> Provide:
    """A dependency on what the lifespan opened under `name`."""

    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


# -- handlers ------------------------------------------------------------------------------------


@post("/analyze/start", status_code=HTTP_200_OK)
async def start_job(data: JSONBody[StartRequest], jobs: NamedDependency[JobStore]) -> StartResponse:
    """Queue a fetch of the repository; answers at once, before any download."""
    target = parse_repo_url(data.repo_url)
    record = await jobs.start(target)
    bind_job_id(record.job_id)
    return StartResponse(job_id=record.job_id)


@get("/analyze/jobs/{job_id:str}")
async def get_job(job_id: FromPath[str], jobs: NamedDependency[JobStore]) -> JobRecord:
    """The job as the `jobs` KV bucket holds it: status, repo, ref, commit sha, counts, error, timestamps."""
    bind_job_id(check_job_id(job_id))
    return await jobs.get(job_id)


@get("/analyze/jobs/{job_id:str}/functions")
async def list_functions(
    job_id: FromPath[str],
    functions: NamedDependency[FunctionLister],
    prefix: FromQuery[str] = "",
    contains: FromQuery[str] = "",
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str] = "",
) -> FunctionPage:
    """A page of the names `/analyze/function` accepts for the job, with file and line, in a stable
    order; `prefix` filters on the full dotted name, `contains` on any part of it (any case)."""
    return await functions.page(job_id, prefix=prefix, contains=contains, limit=limit, cursor=cursor)


@post("/analyze/function", status_code=HTTP_200_OK)
async def analyze_function(
    data: JSONBody[FunctionRequest], analysis: NamedDependency[Analysis]
) -> FunctionResponse:
    """Review one function of the job's repository; waits for a job that is still being fetched."""
    suggestions = await analysis.review(data.job_id, data.function_name, request_id=current_request_id())
    return FunctionResponse(suggestions=suggestions)


@post("/analyze/findings", status_code=HTTP_200_OK)
async def analyze_findings(
    data: JSONBody[FunctionRequest], analysis: NamedDependency[Analysis]
) -> FindingsResponse:
    """The review of `/analyze/function`, with each finding as data: for SARIF, editors and CI."""
    reviewed = await analysis.reviewed(data.job_id, data.function_name, request_id=current_request_id())
    found = reviewed.function
    return FindingsResponse(
        function=FunctionPlace(
            name=found.qualified_name, path=found.path, start_line=found.start_line, end_line=found.end_line
        ),
        suggestions=reviewed.suggestions,
        findings=reviewed.findings,
        in_context=reviewed.in_context,
    )


@get("/health", sync_to_thread=False)
def health(nc: NamedDependency[NatsClient]) -> Response[Health]:
    if nc.is_connected:
        return Response(Health(status="ok", nats="connected"), status_code=HTTP_200_OK)
    return Response(
        Health(status="unavailable", nats="disconnected"), status_code=HTTP_503_SERVICE_UNAVAILABLE
    )


# -- the app -------------------------------------------------------------------------------------


def stop_waiting(app: Litestar) -> None:
    """On SIGTERM (`python -m analyzer`): requests waiting for a job get 503 at once; the rest
    finish within SHUTDOWN_TIMEOUT_S."""
    jobs: JobStore | None = app.state.get(JOBS)
    if jobs is not None:  # None: the lifespan has not opened it yet
        jobs.stop_waiting()


def create_app(settings: Settings | None = None, *, scan_checker: PieceChecker | None = None) -> Litestar:
    """The analyzer app; NATS, the gateway client and the snapshot cache open in its lifespan.
    `scan_checker` checks the scans' pieces (None: this analyzer takes no pieces)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def connections(app: Litestar) -> AsyncIterator[None]:
        nc = await connect_nats(
            settings.nats_url,
            name="codereview-analyzer",
            timeout_s=settings.nats_timeout_s,
            start_wait_s=settings.nats_start_wait_s,
            log=NATS_LOG,
        )
        preloader: Preloader | None = None
        budget = ParseBudget.of(settings)
        # Two workers: a lookup whose file takes its whole budget does not hold up the others'.
        parser = ParserPool(budget, workers=2)
        # The searches of a snapshot's whole text (which files may define a name, a 404's close
        # names), in a worker that keeps what it built: as many snapshots as the cache.
        searcher = SearchPool(
            budget,
            max_entries=settings.analyzer_snapshot_cache_entries,
            max_bytes=settings.analyzer_snapshot_cache_bytes,
        )
        warmer = IndexWarmer(budget) if settings.analyzer_warm_index else None
        in_context = settings.analyzer_review_context
        typechecks = (
            TypeChecks(
                TypeCheckBudget.of(settings),
                concurrency=settings.analyzer_typecheck_concurrency,
                entries=settings.analyzer_snapshot_cache_entries,
            )
            if in_context and settings.analyzer_typecheck_enabled
            else None
        )
        gateway = AsyncOpenAI(
            base_url=settings.gateway_url,
            api_key=settings.gateway_api_key.get_secret_value(),
            timeout=settings.gateway_timeout_s,
            max_retries=settings.gateway_retries,
            # aiohttp under the package's client: 2.0-2.1 ms of CPU a review instead of httpx's
            # 2.5-2.6 ms, against an instant gateway (bench analyzer --transport=1).
            http_client=DefaultAioHttpClient(),
        )

        def on_loaded(loaded: LoadedSnapshot, still_cached: Callable[[], bool]) -> None:
            # Called on loads, which only happen once the app serves: `functions` is bound by then.
            # The search worker is spawned once a snapshot is there to search, after the request
            # that loaded it is answered (as the warm-up's): a first 404 then does not wait for it.
            asyncio.get_running_loop().call_later(WARM_DELAY_S, searcher.start)
            if typechecks is not None:  # the whole snapshot's type check, once, in the background
                typechecks.start(loaded.key, loaded.snapshot.files)
            if warmer is None:
                functions.prepare(loaded, still_cached)
                return
            warmer.warm(loaded, still_cached)
            functions.prepare(loaded, still_cached, after=lambda: warmer.wait(loaded.key))

        try:
            js = nc.jetstream(timeout=settings.nats_timeout_s)
            stores = await when_jetstream_ready(
                lambda: ensure_jetstream(js),
                url=settings.nats_url,
                start_wait_s=settings.nats_start_wait_s,
                log=NATS_LOG,
            )
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
                parse=parser.parse,
                search=searcher.for_snapshot,
            )
            functions = FunctionLister.of(settings, jobs, snapshots)
            reviews = GatewayClient(gateway, settings.gateway_model)
            context = (
                ContextBuilder(uses_max_chars=settings.analyzer_context_max_chars) if in_context else None
            )
            analysis = Analysis(
                jobs,
                snapshots,
                reviews,
                wait_timeout_s=settings.analyzer_wait_timeout_s,
                source_max_chars=settings.analyzer_source_max_chars,
                context=context,
                typechecks=typechecks,
                typecheck_wait_s=settings.analyzer_typecheck_wait_s,
            )
            app.state.update(
                {
                    NATS: nc,
                    JOBS: jobs,
                    SNAPSHOTS: snapshots,
                    FUNCTIONS: functions,
                    ANALYSIS: analysis,
                    WARMER: warmer,
                }
            )
            if settings.analyzer_preload:
                preloader = Preloader(nc, jobs, snapshots)
                await preloader.start()
            checker = scan_checker or GatewayPieceChecker.of(
                settings, parser=parser, gateway=reviews, context=context, typechecks=typechecks
            )
            async with ScanService(nc, jobs, snapshots, checker, settings, repos=stores.repos) as scans:
                app.state[SCANS] = scans
                yield
        finally:
            if preloader is not None:
                await preloader.stop()
            if warmer is not None:
                await warmer.close()
            if typechecks is not None:
                await typechecks.aclose()
            await functions.close()
            await asyncio.to_thread(parser.close)
            await asyncio.to_thread(searcher.close)
            await gateway.close()
            try:
                await nc.drain()
            except nats.errors.Error:  # reconnecting or already closed: nothing left to flush
                await nc.close()

    return Litestar(
        route_handlers=[
            start_job,
            get_job,
            list_functions,
            analyze_function,
            analyze_findings,
            health,
            *SCAN_ROUTES,
            *([MetricsController] if settings.metrics_enabled else []),
        ],
        lifespan=[connections],
        # One dependency per handler: Litestar resolves two or more at one level in an anyio task
        # group, a task each (see gateway/app.py).
        dependencies={name: _opened(name) for name in (NATS, JOBS, FUNCTIONS, ANALYSIS, SCANS)},
        # The request id first, so that a 401 or 429 carries one too; metrics count refusals.
        middleware=[
            request_id_middleware,
            *([http_metrics()] if settings.metrics_enabled else []),
            *access_middleware(
                settings, service="analyzer", unauthorized=Unauthorized, answer=refusal_handler
            ),
        ],
        before_request=require_utf8_body(malformed_body),
        # Logging is set up by servicekit.logs; Litestar's default would add a root handler at INFO
        # that logs every gateway request of the openai package's HTTP client, a cost per request.
        logging_config=None,
        exception_handlers={
            AnalyzerError: analyzer_error_handler,
            ValidationException: validation_error_handler,
            TooManyRequestsException: rate_limited_handler,
            HTTPException: create_exception_response,
            Exception: unexpected_error_handler,
        },
    )
