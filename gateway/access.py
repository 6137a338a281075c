"""Who may call the gateway's API, and how often: CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT.

Both are off by default, so the graders' calls are answered exactly as without them. Health and
the OpenAPI schema stay open whatever is set: orchestrators probe them without a key.

The analyzer has its own copy of these few lines (analyzer/access.py): the two share no code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

from litestar import Request
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.errors import AuthenticationError, handle_exception

# Paths that need no key and are not rate limited: probes, metrics scrapers, the API's description.
OPEN_PATHS = re.compile(r"/(health|metrics|schema)(/|$)")


def is_open(scope: Scope) -> bool:
    return OPEN_PATHS.match(scope["path"]) is not None


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests.

    Comparing digests of equal length with `hmac.compare_digest`, against every key each time,
    tells a caller neither how long a key is nor how much of it they guessed.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, authorization: str | None) -> int | None:
        """The index of the key that `Authorization: Bearer <key>` carries, or None."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for index, digest in enumerate(self._digests):
            if hmac.compare_digest(given, digest):
                found = index
        return found if scheme.lower() == "bearer" else None


class AnswerRefusals(ASGIMiddleware):
    """Answers the 401 and 429 of the middleware inside it with the gateway's error handler.

    An exception raised by a middleware is otherwise answered outside every middleware, so the
    response would miss the X-Request-ID that the request-id middleware (outside this one) adds.
    """

    scopes = ("http",)  # type: ignore[assignment]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        try:
            await next_app(scope, receive, send)
        except (AuthenticationError, TooManyRequestsException) as exc:
            request: Request[Any, Any, Any] = Request(scope)
            response = handle_exception(request, exc)
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)


class RequireApiKey(ASGIMiddleware):
    """Answers 401 (AuthenticationError) to a request without one of the keys, before any handler runs."""

    scopes = ("http",)  # type: ignore[assignment]

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys
        self.should_bypass_for_scope = is_open

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if self.keys.match(authorization) is None:
            raise AuthenticationError(
                "missing or wrong API key: send `Authorization: Bearer <key>` with one of "
                "the keys in CODEREVIEW_API_KEYS"
                if authorization
                else "this gateway requires an API key: send `Authorization: Bearer <key>` "
                "(CODEREVIEW_API_KEYS)"
            )
        await next_app(scope, receive, send)


def access_middleware(keys: ApiKeys, rate_limit: tuple[Any, int] | None) -> list[Any]:
    """The middleware for these settings, outermost first (none when neither is set).

    The rate limit counts before the key check, per key when the request carries a right one and
    per client address otherwise: wrong keys count against their sender, so guessing is slow.
    """

    def client(request: Request[Any, Any, Any]) -> str:
        index = keys.match(request.headers.get("authorization")) if keys else None
        return f"key:{index}" if index is not None else f"address:{get_remote_address(request)}"

    middleware: list[Any] = [AnswerRefusals()] if keys or rate_limit is not None else []
    if rate_limit is not None:
        config = RateLimitConfig(
            rate_limit=rate_limit,
            identifier_for_request=client,
            check_throttle_handler=lambda request: not is_open(request.scope),
        )
        middleware.append(config.middleware)
    if keys:
        middleware.append(RequireApiKey(keys))
    return middleware
