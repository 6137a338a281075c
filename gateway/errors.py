"""The gateway's one error tree, and the one handler that turns it into JSON responses.

Every error body has the shape OpenAI clients understand, so the `openai` package surfaces our
message: `{"error": {"message": ..., "type": ..., "provider": ...}}`.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    SerializationException,
    TooManyRequestsException,
    ValidationException,
)

from servicekit.access import retry_after
from servicekit.bodies import body_problem

log = logging.getLogger("gateway.errors")


# What decoding bytes that are not the JSON expected raises: msgspec raises UnicodeDecodeError, not
# a DecodeError, for invalid UTF-8 inside a JSON string, and RecursionError for JSON nested deeper
# than it follows (a few KB of `[` do it). Catch all three wherever provider (or cache) bytes are
# decoded: the provider's bad bytes are its 502 (or a cache miss), never a 500.
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def status_words(status: int) -> str:
    """What a provider's HTTP status says, in the gateway's words (never the provider's text)."""
    if status in (401, 403):
        return "rejected the gateway's API key"
    if status == 404:
        return "no such model or route"
    if status == 413:
        return "request too large"
    if status == 429:
        return "rate limited"
    if status >= 500:
        return "failed on its side"
    if 400 <= status < 500:
        return "refused the request"
    return "unexpected status"


class ErrorDetail(msgspec.Struct, kw_only=True, frozen=True):
    message: str
    type: str
    provider: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True, frozen=True):
    error: ErrorDetail


class GatewayError(Exception):
    """Base of every error the gateway answers on purpose."""

    status_code = 500
    error_type = "gateway_error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider


class ConfigError(GatewayError):
    """The settings cannot work (raised at startup, never during a request)."""


class AuthenticationError(GatewayError):
    """CODEREVIEW_API_KEYS is set and the request carries none of its keys."""

    status_code = 401
    error_type = "authentication_error"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 (never mutated)


class MalformedBodyError(GatewayError):
    """The body is not UTF-8, so it cannot be JSON."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidInputError(GatewayError):
    """The body is JSON but not what the route accepts (wrong type, empty code, too large...)."""

    status_code = 422
    error_type = "invalid_request_error"


class UpstreamError(GatewayError):
    """The provider failed for good: unreachable, 5xx or 429 after retries, or a rejected key."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    """The provider did not answer within the read timeout."""

    status_code = 504
    error_type = "upstream_timeout"


def error_response(
    status_code: int,
    message: str,
    error_type: str,
    provider: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = ErrorBody(error=ErrorDetail(message=message, type=error_type, provider=provider))
    return Response(
        msgspec.json.encode(body), status_code=status_code, media_type="application/json", headers=headers
    )


def rate_limited_response(exc: TooManyRequestsException) -> Response[bytes]:
    """Litestar's rate limiter (CODEREVIEW_RATE_LIMIT) refused the request: 429 with Retry-After."""
    seconds, headers = retry_after(exc)
    message = f"too many requests (CODEREVIEW_RATE_LIMIT): retry after {seconds} s"
    return error_response(429, message, "rate_limit_error", headers=headers)


def handle_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    """A typed body that does not fit: 422 naming the field as msgspec found it (400 when there is none)."""
    problem = body_problem(exc)
    if problem.empty:
        return error_response(400, "request body is empty: send a JSON object", "invalid_request_error")
    return error_response(422, f"invalid request body: {problem.reason}", "invalid_request_error")


def malformed_body(exc: UnicodeDecodeError) -> MalformedBodyError:
    """servicekit.bodies.require_utf8_body's refusal, in the gateway's words."""
    return MalformedBodyError(f"request body is not valid UTF-8: {exc.reason}")


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Map any exception to a JSON error; unknown ones become a 500 that says nothing internal."""
    if isinstance(exc, GatewayError):
        if exc.status_code >= 500:
            log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status_code, exc.message)
        return error_response(exc.status_code, exc.message, exc.error_type, exc.provider, exc.headers)
    if isinstance(exc, TooManyRequestsException):
        return rate_limited_response(exc)
    if isinstance(exc, HTTPException) and exc.status_code == 413:
        # Litestar says only "Request Entity Too Large": name the limit that applies.
        limit = "GATEWAY_CHECKS_MAX_BYTES" if request.url.path == "/checks" else "10 MB"
        message = f"request body is larger than {request.url.path} accepts ({limit})"
        return error_response(413, message, "invalid_request_error")
    if isinstance(exc, HTTPException) and isinstance(exc.__cause__, SerializationException):
        return error_response(400, f"request body is not valid JSON: {exc.detail}", "invalid_request_error")
    if isinstance(exc, HTTPException):
        error_type = "invalid_request_error" if exc.status_code < 500 else "gateway_error"
        return error_response(exc.status_code, str(exc.detail), error_type)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error in the gateway", "gateway_error")
