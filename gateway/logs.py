"""Logging for the gateway: one setup, a request id on every line, and secrets masked."""

from __future__ import annotations

import logging
import re
import secrets
import sys
from collections.abc import Iterable
from contextvars import ContextVar

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str] = ContextVar("request_id", default="-")

# Ids a caller may choose: short, and nothing a log line or a header could be confused by.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _ContextFilter(logging.Filter):
    """Adds the request id and masks every known secret in the rendered message."""

    def __init__(self, secret_values: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [value for value in secret_values if len(value) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        if self._secrets:
            message = record.getMessage()
            for value in self._secrets:
                message = message.replace(value, "***")
            record.msg, record.args = message, None
        return True


def setup_logging(level: str, secret_values: Iterable[str] = ()) -> None:
    """Send the gateway's logs to stderr, one line each, with `secret_values` masked as `***`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_ContextFilter(secret_values))
    logger = logging.getLogger("gateway")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give each HTTP request an id (the caller's `X-Request-ID` if short and plain: letters, digits,
    `._:-`) and echo it in the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        # The analyzer keeps a caller's id by the same rule, so that one id follows a review throughout.
        if not _SANE_ID.fullmatch(rid):
            rid = secrets.token_hex(8)
        token = request_id.set(rid)
        raw = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)

    return middleware
