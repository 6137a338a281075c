"""The scan routes; the handlers get the open ScanService as the dependency `scans`."""

from __future__ import annotations

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from analyzer.scan.service import DEFAULT_LIMIT, ScanService
from jobs_contract import is_job_id
from review_contract.scan import FindingsPage, ScanRequest, ScanStarted, ScanStatus
from servicekit.logs import bind_job_id

# The name of the dependency the handlers take (`Provide` it in the app).
SCANS = "scans"


@post("/analyze/scan", status_code=HTTP_200_OK)
async def start_scan(data: JSONBody[ScanRequest], scans: NamedDependency[ScanService]) -> ScanStarted:
    """Start a scan of a ready or still-fetching job; answers at once with its id."""
    if is_job_id(data.job_id):
        bind_job_id(data.job_id)
    return await scans.start(data)


@get("/analyze/scans/{scan_id:str}")
async def get_scan(scan_id: FromPath[str], scans: NamedDependency[ScanService]) -> ScanStatus:
    """The scan's status, counts and progress."""
    return await scans.status(scan_id)


@get("/analyze/scans/{scan_id:str}/findings")
async def get_scan_findings(
    scan_id: FromPath[str],
    scans: NamedDependency[ScanService],
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str] = "",
) -> FindingsPage:
    """A page of a completed scan's findings, ordered by path, line, rule."""
    return await scans.findings(scan_id, limit=limit, cursor=cursor)


SCAN_ROUTES = [start_scan, get_scan, get_scan_findings]
