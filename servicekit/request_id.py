"""The request id: one per HTTP request, the caller's if sane, on every log line and in the response.

The analyzer sends its id to the gateway and the gateway to its provider (model_host included) as
`X-Request-ID`; each service keeps a sane one, so one review can be followed across their logs.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:  # the fetcher's image has no Litestar; at run time these are only annotations
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_HEADER = HEADER.encode()
# Ids a caller may choose: short, and nothing a log line or a header could be confused by.
# The fetch request carries the analyzer's under the same rule (jobs_contract).
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}(?![\s\S])"  # msgspec: re.search; `$` allows a final newline
SANE_ID = re.compile(REQUEST_ID_PATTERN)


def current_request_id() -> str | None:
    """The id of the request this code serves (bound by request_id_middleware), or None outside one."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give each HTTP request an id, the caller's `X-Request-ID` if short and plain (letters, digits,
    `._:-`, at most 64) or a new one, bound as `request_id` for its log lines and echoed in the
    response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        kind: str = scope["type"]  # litestar's ScopeType is a str enum
        if kind != "http":
            await app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == _HEADER:
                rid = value.decode("latin-1")
                break
        if not SANE_ID.match(rid):
            rid = secrets.token_hex(8)
        raw = rid.encode()
        # A request starts with no job bound (Ellipsis is structlog's "unbound"), and whatever the
        # handler binds is undone with it: in-process test clients share one context across requests.
        tokens = structlog.contextvars.bind_contextvars(request_id=rid, job_id=...)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (_HEADER, raw)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    return middleware
