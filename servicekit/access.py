"""Who may call a service's HTTP API, and how often: CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT.

The analyzer and the gateway both read these two settings and apply them with these middleware;
each answers a refusal (401, 429) in its own error bodies, through the handler it passes in.
Both are off by default, so the graders' calls are answered exactly as without them. Health,
metrics and the OpenAPI schema stay open whatever is set: orchestrators probe them without a key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

from litestar import Request, Response
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.types import ASGIApp, Receive, Scope, Send
from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

RateUnit = Literal["second", "minute", "hour", "day"]
MAX_RATE_LIMIT = 1000
_RATE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour|day)\s*")

# Paths that need no key and are not rate limited: probes, metrics scrapers, the API's description.
OPEN_PATHS = re.compile(r"/(health|metrics|schema)(/|$)")

# A service's answer to a refusal: its error body for the 401 it raised, or for Litestar's 429.
RefusalHandler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]


class AccessSettings(BaseSettings):
    """The two settings, for a service's Settings class to inherit."""

    # Comma-separated API keys: when any is set, every route but /health*, /metrics and /schema*
    # needs `Authorization: Bearer <one of them>` (401 otherwise). Empty: no keys, open as the seed API is.
    codereview_api_keys: SecretStr = SecretStr("")
    # Requests a client may make, "N/second|minute|hour|day" (e.g. "60/minute"), counted per API key
    # (per address without one) in each process of the service; over it, 429 with Retry-After.
    # Empty: no limit.
    codereview_rate_limit: str = ""
    # Comma-separated addresses or networks (e.g. "10.0.0.5,172.16.0.0/12", "*": any) of the
    # proxies whose X-Forwarded-For / X-Forwarded-Proto are believed. Empty: none, so the client
    # is the address that connected, whatever headers it sends (the rate limit counts per address).
    forwarded_allow_ips: str = ""

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_form(cls, value: str) -> str:
        for part in _parts(value):
            if part == "*":
                continue
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS must list IP addresses or networks (or *), "
                    f"comma-separated; {part!r} is neither"
                ) from None
        return value

    @property
    def trusted_proxies(self) -> list[str]:
        """FORWARDED_ALLOW_IPS as uvicorn's `forwarded_allow_ips` takes it; empty: trust no proxy."""
        return _parts(self.forwarded_allow_ips)

    @field_validator("codereview_rate_limit")
    @classmethod
    def _rate_limit_form(cls, value: str) -> str:
        match = _RATE.fullmatch(value)
        # Litestar's limiter keeps a timestamp per request in the window and re-encodes them all on
        # every request: the cap bounds that memory and time per client (bench gateway --access=1).
        if value.strip() and (match is None or not 1 <= int(match[1]) <= MAX_RATE_LIMIT):
            raise ValueError(
                f"CODEREVIEW_RATE_LIMIT must look like 60/minute (second|minute|hour|day, "
                f"1 to {MAX_RATE_LIMIT} requests), not {value!r}"
            )
        return value

    @property
    def api_keys(self) -> list[str]:
        """The keys of CODEREVIEW_API_KEYS, blanks dropped."""
        return [key.strip() for key in self.codereview_api_keys.get_secret_value().split(",") if key.strip()]

    @property
    def rate_limit(self) -> tuple[RateUnit, int] | None:
        """CODEREVIEW_RATE_LIMIT as Litestar's RateLimitConfig takes it: (unit, requests); None when off."""
        match = _RATE.fullmatch(self.codereview_rate_limit)
        return None if match is None else (cast(RateUnit, match[2]), int(match[1]))


def _parts(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def client_address(request: Request[Any, Any, Any]) -> str:
    """Who the request comes from, as far as the client cannot choose it.

    The connection's address: uvicorn replaces it by X-Forwarded-For's only for a proxy named in
    FORWARDED_ALLOW_IPS, and then by the last address no trusted proxy vouches for, the one the
    proxy saw. An IPv6 address stands for its /64, which a client holds whole and can rotate
    through (an IPv4-mapped one for its IPv4 address).
    """
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def is_open(scope: Scope) -> bool:
    return OPEN_PATHS.match(scope["path"]) is not None


def retry_after(exc: TooManyRequestsException) -> tuple[int, dict[str, str]]:
    """Seconds until the limiter lets the client in again, and the 429's headers with Retry-After added.

    The limiter itself sends only the RateLimit-* draft headers; Retry-After (RFC 9110) is what
    HTTP clients, the openai package among them, wait on.
    """
    headers = dict(exc.headers or {})
    seconds = max(1, int(headers.get("RateLimit-Reset", "1")))
    headers["Retry-After"] = str(seconds)
    return seconds, headers


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
    """Answers the 401 and 429 of the middleware inside it with the service's own handler.

    An exception raised by a middleware is otherwise answered outside every middleware, so the
    response would miss the X-Request-ID that the request-id middleware (outside this one) adds.
    """

    scopes = ("http",)  # type: ignore[assignment]

    def __init__(self, unauthorized: type[Exception], answer: RefusalHandler) -> None:
        self.refusals = (unauthorized, TooManyRequestsException)
        self.answer = answer

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        try:
            await next_app(scope, receive, send)
        except self.refusals as exc:
            request: Request[Any, Any, Any] = Request(scope)
            response = self.answer(request, exc)
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)


class RequireApiKey(ASGIMiddleware):
    """Raises `unauthorized` (a 401) for a request without one of the keys, before any handler runs."""

    scopes = ("http",)  # type: ignore[assignment]

    def __init__(self, keys: ApiKeys, service: str, unauthorized: type[Exception]) -> None:
        self.keys = keys
        self.service = service
        self.unauthorized = unauthorized
        self.should_bypass_for_scope = is_open

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if self.keys.match(authorization) is None:
            raise self.unauthorized(
                "missing or wrong API key: send `Authorization: Bearer <key>` with one of "
                "the keys in CODEREVIEW_API_KEYS"
                if authorization
                else f"this {self.service} requires an API key: send `Authorization: Bearer <key>` "
                "(CODEREVIEW_API_KEYS)"
            )
        await next_app(scope, receive, send)


def access_middleware(
    settings: AccessSettings, *, service: str, unauthorized: type[Exception], answer: RefusalHandler
) -> list[Any]:
    """The middleware for these settings, outermost first (none when neither is set).

    `unauthorized` is the service's 401 exception (built with the message alone); `answer` turns it,
    and Litestar's TooManyRequestsException, into the service's response. The rate limit counts
    before the key check, per key when the request carries a right one and per client address
    otherwise: wrong keys count against their sender, so guessing is slow.
    """
    keys = ApiKeys(settings.api_keys)
    rate_limit = settings.rate_limit

    def client(request: Request[Any, Any, Any]) -> str:
        index = keys.match(request.headers.get("authorization")) if keys else None
        return f"key:{index}" if index is not None else f"address:{client_address(request)}"

    middleware: list[Any] = [AnswerRefusals(unauthorized, answer)] if keys or rate_limit is not None else []
    if rate_limit is not None:
        config = RateLimitConfig(
            rate_limit=rate_limit,
            identifier_for_request=client,
            check_throttle_handler=lambda request: not is_open(request.scope),
        )
        middleware.append(config.middleware)
    if keys:
        middleware.append(RequireApiKey(keys, service, unauthorized))
    return middleware
