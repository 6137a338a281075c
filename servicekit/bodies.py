"""Request bodies Litestar cannot decode: bytes that are not UTF-8, and JSON that does not fit a
handler's typed `data`. Each service words its own error response from what these report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException


def require_utf8_body(
    refuse: Callable[[UnicodeDecodeError], Exception],
) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A `before_request` hook that raises `refuse(error)` (the service's 400) for a body that is not UTF-8.

    msgspec raises UnicodeDecodeError, not a DecodeError, for invalid UTF-8 inside a JSON string,
    and Litestar turns only the latter into a 400. Checking the body before the handler, rather
    than handling UnicodeDecodeError wherever it comes from, keeps a provider's or a store's bad
    bytes from being blamed on the caller. The body read here is the one the handler decodes
    (Litestar keeps it), so it is read once.
    """

    async def check(request: Request[Any, Any, Any]) -> None:
        try:
            (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise refuse(exc) from None

    return check


@dataclass(frozen=True)
class BodyProblem:
    """What is wrong with a JSON body that does not fit the handler's typed `data`.

    Litestar decodes the body as the `data` argument, so msgspec's messages name paths from
    `$.data`; clients sent the body itself, and the paths here are theirs.
    """

    # msgspec's reason, its path as the client sees it (e.g. "Expected `int`, got `str` - at `$.n`").
    reason: str
    # The field's path without `$.` (e.g. "messages[0].role"); None for the body as a whole.
    path: str | None = None
    # No body at all (Litestar then finds no `data` to decode).
    empty: bool = False


def body_problem(exc: ValidationException) -> BodyProblem:
    """The problem behind a ValidationException that Litestar raised for a typed body."""
    cause = exc.__cause__
    if isinstance(cause, msgspec.ValidationError):
        reason = str(cause).replace("`$.data.", "`$.").replace(" - at `$.data`", "")
        if reason == "Object missing required field `data`":
            return BodyProblem(reason="the request body is empty", empty=True)
        path = reason.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in reason else None
        return BodyProblem(reason=reason, path=path)
    items = exc.extra if isinstance(exc.extra, list) else []
    reason = "; ".join(str(item.get("message", item)) for item in items if isinstance(item, dict))
    return BodyProblem(reason=reason or str(exc.detail))
