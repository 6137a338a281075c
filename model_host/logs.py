"""Logging for model_host: one line per event, to stderr.

Nothing secret passes through model_host (it holds no keys); prompts and completions are never
logged either, only their token counts.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

FORMAT = "%(asctime)s %(levelname)s %(name)s request=%(request_id)s %(message)s"

# The completion id of the request being served ("-" outside requests), on every log line.
request_id: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record, from the context of the code that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def setup_logging(level: str = "INFO") -> None:
    """Route model_host's loggers (and llama-cpp-python's) to stderr at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger("model_host")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # llama-cpp-python forwards llama.cpp's own log through this logger; its INFO lines are load chatter.
    logging.getLogger("llama-cpp-python").setLevel(logging.WARNING)
