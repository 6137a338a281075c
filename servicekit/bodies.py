"""What was wrong with a request body that Litestar refused to decode into a handler's typed `data`.

Litestar decodes the body as the handler's `data` argument, so msgspec's messages name paths from
`$.data`; clients sent the body itself. Each service words its own error response from this.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar.exceptions import ValidationException


@dataclass(frozen=True)
class BodyProblem:
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
