"""Logging for the fetcher: one line per event, with the job id on every line that has one.

Secrets never reach the logs: GITHUB_TOKEN only ever goes into an Authorization header, and
httpx (which would log request lines, never headers) is kept at WARNING.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s job=%(job_id)s %(message)s"


class _JobIdDefault(logging.Filter):
    """Lines logged outside a job show job=-, so the format never fails."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = "-"
        return True


def setup_logging(level: str = "INFO") -> None:
    """Send the fetcher's logs (and FastStream's) to stderr in one format; idempotent."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_codereview_fetcher", False):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_JobIdDefault())
    handler._codereview_fetcher = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
