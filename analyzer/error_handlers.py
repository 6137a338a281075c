"""How the analyzer answers errors: the one mapping from its error tree (`analyzer.errors`) to
JSON responses, and Litestar's own refusals in the same shape.

Every error body has Litestar's usual shape: `{"status_code": N, "detail": "...", "extra": {...}}`
(`extra` only when there is some).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from litestar import Request, Response
from litestar.exceptions import TooManyRequestsException, ValidationException

from analyzer.errors import (
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    AnalyzerError,
    Unauthorized,
)
from servicekit.access import retry_after

logger = logging.getLogger("analyzer.errors")


def _body(status_code: int, detail: str, extra: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail}
    if extra:
        body["extra"] = extra
    return body


def analyzer_error_handler(request: Request[Any, Any, Any], exc: AnalyzerError) -> Response[dict[str, Any]]:
    """The one mapping from the error tree to HTTP."""
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    else:
        logger.info("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return Response(
        _body(exc.status_code, exc.detail, exc.extra), status_code=exc.status_code, headers=exc.headers
    )


def rate_limited_handler(
    request: Request[Any, Any, Any], exc: TooManyRequestsException
) -> Response[dict[str, Any]]:
    """Litestar's rate limiter (CODEREVIEW_RATE_LIMIT) refused the request: 429 with Retry-After."""
    seconds, headers = retry_after(exc)
    logger.info("%s %s -> 429: rate limit", request.method, request.url.path)
    return Response(
        _body(
            HTTP_429_TOO_MANY_REQUESTS,
            f"too many requests (CODEREVIEW_RATE_LIMIT): retry after {seconds} s",
            None,
        ),
        status_code=HTTP_429_TOO_MANY_REQUESTS,
        headers=headers,
    )


def refusal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """servicekit.access's refusals in the analyzer's bodies: Unauthorized (401) or the rate limit's 429."""
    if isinstance(exc, TooManyRequestsException):
        return rate_limited_handler(request, exc)
    return analyzer_error_handler(request, cast(Unauthorized, exc))


def validation_error_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """JSON that misses or mistypes a field is bad input: 422, as FastAPI answers it.

    A body that is not JSON at all never gets here: Litestar answers it with a 400 (ClientException).
    """
    logger.info("%s %s -> 422: %s", request.method, request.url.path, exc.detail)
    return Response(
        _body(HTTP_422_UNPROCESSABLE_ENTITY, exc.detail, exc.extra),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
    )


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A bug: log it with its traceback, answer a JSON 500 that leaks nothing."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(
        _body(HTTP_500_INTERNAL_SERVER_ERROR, "internal error (logged by the analyzer)", None),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )
