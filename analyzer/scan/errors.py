"""The scan routes' errors, in the analyzer's one error tree (analyzer.errors maps them to HTTP)."""

# Names say what went wrong, as in analyzer.errors.
# ruff: noqa: N818

from __future__ import annotations

from typing import ClassVar

from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_501_NOT_IMPLEMENTED,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from analyzer.errors import AnalyzerError


class ScanNotFound(AnalyzerError):
    """No scan has this id (never issued, malformed, or aged out of the `scans` bucket)."""

    status_code = HTTP_404_NOT_FOUND


class ScanNotFinished(AnalyzerError):
    """Findings are asked of a scan that is still queued or running, or that failed."""

    status_code = HTTP_409_CONFLICT


class BadCursor(AnalyzerError):
    """A findings cursor this analyzer never gave out."""

    status_code = HTTP_400_BAD_REQUEST


class PullScansUnavailable(AnalyzerError):
    """`pull` was asked of an analyzer that cannot ask the fetcher about pull requests."""

    status_code = HTTP_501_NOT_IMPLEMENTED


class ScanQueueFull(AnalyzerError):
    """The scan queue holds ANALYZER_SCAN_QUEUE_MAX_MSGS messages (or its bytes) already."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "30"}
