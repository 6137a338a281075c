"""Logging for the analyzer: one line per event, with the request id and job id on every line.

Secrets never reach the logs: the only one the analyzer holds (GATEWAY_API_KEY) is a SecretStr
and is never formatted into a message.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
job_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="-")

FORMAT = "%(asctime)s %(levelname)s %(name)s [request=%(request_id)s job=%(job_id)s] %(message)s"
REQUEST_ID_HEADER = "x-request-id"
# Ids a caller may choose: short, and nothing a log line or a header could be confused by.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ContextFilter(logging.Filter):
    """Adds the current request id and job id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        return True


def setup_logging(level: str = "INFO") -> None:
    """Send the analyzer's logs to stderr in the one format; idempotent."""
    logger = logging.getLogger("analyzer")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_analyzer", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(ContextFilter())
        handler._analyzer = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Take the caller's X-Request-ID (if short and plain: letters, digits, `._:-`) or make one;
    echo it in the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER.encode():
                incoming = value.decode("latin-1")
                break
        # The gateway keeps an id only by the same rule, so that one id follows a review throughout.
        request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        job_token = job_id_var.set("-")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: Any = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            job_id_var.reset(job_token)
            request_id_var.reset(token)

    return middleware
