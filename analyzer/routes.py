"""The analyzer's routes: the request and response bodies, and the handlers.

- `POST /analyze/start` `{"repo_url"}` -> 200 `{"job_id"}` (the fetch happens in the background, by a fetcher)
- `GET /analyze/jobs/{job_id}` -> the job record
- `POST /analyze/function` `{"job_id", "function_name"}` -> 200 `{"suggestions": [...]}`
- `GET /analyze/jobs/{job_id}/functions?prefix=&contains=&limit=&cursor=` -> a page of the names
  `/analyze/function` accepts for the job (analyzer.functions)
- `POST /analyze/findings` `{"job_id", "function_name"}` -> 200: the same review with its findings
  as data (rule, path, line, severity, fingerprint) and the function's place, for tools
- `GET /health` -> 200 while NATS is connected, else 503

Each handler gets what it uses by name (analyzer.resources opens it); `ROUTES` is what the app serves.
"""

from __future__ import annotations

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ControllerRouterHandler
from nats.aio.client import Client as NatsClient

from analyzer.analysis import Analysis
from analyzer.functions import DEFAULT_LIMIT, FunctionLister, FunctionPage
from analyzer.jobs import JobStore, check_job_id
from analyzer.repo_url import parse_repo_url
from jobs_contract import JobRecord
from review_contract import Finding
from servicekit.logs import bind_job_id
from servicekit.request_id import current_request_id

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


ROUTES: list[ControllerRouterHandler] = [
    start_job,
    get_job,
    list_functions,
    analyze_function,
    analyze_findings,
    health,
]
