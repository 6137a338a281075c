"""The analyzer's error tree: each error's HTTP status, detail and extra fields.

Handlers raise these and never build error responses by hand; `analyzer.error_handlers` turns
them into JSON responses.
"""

# Names say what went wrong (JobNotFound, as the style guide has it), not that it is an error.
# ruff: noqa: N818

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

# The statuses as plain ints, from the standard library: the worker processes import this tree
# too (a listing raises InvalidListing), and need no Litestar (0.2 s of CPU at each start).
HTTP_400_BAD_REQUEST = int(HTTPStatus.BAD_REQUEST)
HTTP_401_UNAUTHORIZED = int(HTTPStatus.UNAUTHORIZED)
HTTP_404_NOT_FOUND = int(HTTPStatus.NOT_FOUND)
HTTP_409_CONFLICT = int(HTTPStatus.CONFLICT)
HTTP_410_GONE = int(HTTPStatus.GONE)
HTTP_422_UNPROCESSABLE_ENTITY = int(HTTPStatus.UNPROCESSABLE_ENTITY)
HTTP_429_TOO_MANY_REQUESTS = int(HTTPStatus.TOO_MANY_REQUESTS)
HTTP_500_INTERNAL_SERVER_ERROR = int(HTTPStatus.INTERNAL_SERVER_ERROR)
HTTP_502_BAD_GATEWAY = int(HTTPStatus.BAD_GATEWAY)
HTTP_503_SERVICE_UNAVAILABLE = int(HTTPStatus.SERVICE_UNAVAILABLE)
HTTP_504_GATEWAY_TIMEOUT = int(HTTPStatus.GATEWAY_TIMEOUT)


class AnalyzerError(Exception):
    """Base of every error the analyzer answers on purpose; `status_code` is the HTTP status."""

    status_code: ClassVar[int] = HTTP_500_INTERNAL_SERVER_ERROR
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


# -- a body that is not JSON (400) -----------------------------------------------------------


class MalformedBody(AnalyzerError):
    """The request body is not UTF-8 text, so it cannot be JSON (RFC 8259 says UTF-8)."""

    status_code = HTTP_400_BAD_REQUEST


# -- no or wrong API key (401) ----------------------------------------------------------------


class Unauthorized(AnalyzerError):
    """CODEREVIEW_API_KEYS is set and the request carries none of its keys."""

    status_code = HTTP_401_UNAUTHORIZED
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}


# -- bad input (422) -------------------------------------------------------------------------


class BadInput(AnalyzerError):
    status_code = HTTP_422_UNPROCESSABLE_ENTITY


class InvalidRepoUrl(BadInput):
    """The repo_url is not one of the accepted GitHub repository URL forms."""


class InvalidJobId(BadInput):
    """A job id that the analyzer could never have issued (empty, too long, bad characters)."""


class InvalidFunctionName(BadInput):
    """An empty or malformed dotted function name."""


class SourceDoesNotParse(BadInput):
    """The file the function would be in is not valid Python 3; waiting will not change that."""


class SearchOverBudget(BadInput):
    """Searching the repository's text for the name takes more than a parse's budget; so would a retry."""


# -- not found (404) -------------------------------------------------------------------------


class JobNotFound(AnalyzerError):
    status_code = HTTP_404_NOT_FOUND


class FunctionNotFound(AnalyzerError):
    status_code = HTTP_404_NOT_FOUND


# -- state conflicts (409) -------------------------------------------------------------------


class JobNotReady(AnalyzerError):
    """The job was still queued or fetching when the wait ran out."""

    status_code = HTTP_409_CONFLICT


class JobFailed(AnalyzerError):
    status_code = HTTP_409_CONFLICT


class SnapshotUnavailable(AnalyzerError):
    """The job says ready but its stored files are unreadable: start a new job."""

    status_code = HTTP_409_CONFLICT


# -- gone (410) -------------------------------------------------------------------------------


class SnapshotExpired(AnalyzerError):
    """The job's stored files are gone from the Object Store (its max age): start a new job."""

    status_code = HTTP_410_GONE


# -- upstream (502/503/504) ------------------------------------------------------------------


class GatewayFailed(AnalyzerError):
    """The gateway could not be reached, failed, or answered something that is not a review."""

    status_code = HTTP_502_BAD_GATEWAY


class GatewayTimeout(GatewayFailed):
    status_code = HTTP_504_GATEWAY_TIMEOUT


class NatsUnavailable(AnalyzerError):
    """NATS (job records, the fetch queue, the stored files) did not answer within
    NATS_REQUEST_DEADLINE_S (or answered something unreadable)."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE
    # A NATS leader election takes seconds; a NATS that is gone is back when it is back.
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "5"}


class WorkersUnavailable(AnalyzerError):
    """The worker processes that parse a file or search a snapshot's text kept dying, and not of
    the budget (killed from outside, the machine out of memory): nothing is decided, ask again."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE


class FetchQueueFull(AnalyzerError):
    """The fetch work queue holds FETCH_QUEUE_MAX_MSGS requests already: no new job until fetchers
    take some. The job's record is marked failed, as for any request that could not be queued."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE
    # A hint, not a promise: a fetch takes seconds, and each fetcher runs FETCHER_CONCURRENCY at once.
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "30"}


class ShuttingDown(AnalyzerError):
    """The analyzer is stopping (SIGTERM) and will not wait for a job any more: ask again."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE


def malformed_body(exc: UnicodeDecodeError) -> MalformedBody:
    """servicekit.bodies.require_utf8_body's refusal, in the analyzer's words."""
    return MalformedBody(f"the body is not valid UTF-8 (byte {exc.start}: {exc.reason}), so it is not JSON")
