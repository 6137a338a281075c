"""model_host's error tree, and the handlers that answer every error in OpenAI's error shape.

Handlers raise these and never build error responses by hand. Every error body is
`{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`, as OpenAI answers it,
so the `openai` package raises its usual exceptions (BadRequestError, NotFoundError, ...).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from servicekit.bodies import body_problem

logger = logging.getLogger("model_host.errors")


class ErrorDetail(msgspec.Struct, kw_only=True, frozen=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True, frozen=True):
    error: ErrorDetail


class ModelHostError(Exception):
    """Base of every error model_host answers on purpose; `status_code` is the HTTP status."""

    status_code: ClassVar[int] = HTTP_500_INTERNAL_SERVER_ERROR
    error_type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> ErrorBody:
        return ErrorBody(
            error=ErrorDetail(message=self.message, type=self.error_type, param=self.param, code=self.code)
        )


# -- bad input (400) -------------------------------------------------------------------------


class InvalidRequestError(ModelHostError):
    """The body is not JSON, or not a chat completion request this server accepts."""

    status_code = HTTP_400_BAD_REQUEST
    error_type = "invalid_request_error"
    code = "invalid_request"


class UnsupportedParameterError(InvalidRequestError):
    """A valid OpenAI parameter (or value) that this server does not implement."""

    code = "unsupported_parameter"


class ContextLengthExceededError(InvalidRequestError):
    """The prompt, or the prompt plus max_tokens, does not fit in the model's context."""

    code = "context_length_exceeded"


# -- not found (404) -------------------------------------------------------------------------


class ModelNotFoundError(ModelHostError):
    status_code = HTTP_404_NOT_FOUND
    error_type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFoundError(ModelHostError):
    status_code = HTTP_404_NOT_FOUND
    error_type = "invalid_request_error"
    code = "not_found"


# -- not now (503) ---------------------------------------------------------------------------


class UnavailableError(ModelHostError):
    """Try again later: `Retry-After` says when."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ModelLoadingError(UnavailableError):
    code = "model_loading"


class QueueFullError(UnavailableError):
    code = "queue_full"


class ShuttingDownError(UnavailableError):
    """The server is stopping (SIGTERM): it starts no more generations; another replica may."""

    code = "shutting_down"


class ModelFailedError(ModelHostError):
    """The model could not be loaded; the server is on its way out (python -m model_host exits non-zero)."""

    status_code = HTTP_503_SERVICE_UNAVAILABLE
    code = "model_failed"


class GenerationFailedError(ModelHostError):
    """The engine raised while generating."""

    code = "generation_failed"


# -- start-up (never HTTP) -------------------------------------------------------------------


class ModelFileError(Exception):
    """MODEL_PATH is missing, unreadable or not a model the engine can load; the message names the path."""


# -- handlers ----------------------------------------------------------------------------------


def _response(status_code: int, body: ErrorBody, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        msgspec.json.encode(body), status_code=status_code, media_type="application/json", headers=headers
    )


def model_host_error_handler(request: Request[Any, Any, Any], exc: ModelHostError) -> Response[bytes]:
    """The one mapping from the error tree to HTTP."""
    log = logger.warning if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR else logger.info
    log("%s %s -> %d %s: %s", request.method, request.url.path, exc.status_code, exc.code, exc.message)
    return _response(exc.status_code, exc.body(), exc.headers())


def validation_error_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    """A JSON body that is not a request this route accepts: 400, naming the field as `param`."""
    problem = body_problem(exc)
    if problem.empty:
        error = InvalidRequestError("the request body is empty: send a chat completion request")
    else:
        error = InvalidRequestError(f"invalid request body: {problem.reason}", param=problem.path)
    return model_host_error_handler(request, error)


def malformed_body(exc: UnicodeDecodeError) -> InvalidRequestError:
    """servicekit.bodies.require_utf8_body's refusal, in model_host's words."""
    return InvalidRequestError(f"the request body is not valid UTF-8 ({exc.reason})")


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors (unknown route, wrong method, a body not JSON...) in OpenAI's shape too."""
    error: ModelHostError
    if exc.status_code == HTTP_404_NOT_FOUND:
        error = RouteNotFoundError(f"no route {request.method} {request.url.path}")
        return model_host_error_handler(request, error)
    if isinstance(exc.__cause__, SerializationException):
        error = InvalidRequestError(f"the request body is not valid JSON: {exc.__cause__}")
        return model_host_error_handler(request, error)
    error_type = (
        "invalid_request_error" if exc.status_code < HTTP_500_INTERNAL_SERVER_ERROR else "server_error"
    )
    body = ErrorBody(error=ErrorDetail(message=str(exc.detail), type=error_type, code=None))
    logger.info("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return _response(exc.status_code, body, dict(exc.headers or {}))


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A bug: log it with its traceback, answer a 500 that leaks nothing."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    body = ErrorBody(
        error=ErrorDetail(
            message="internal error (logged by model_host)", type="server_error", code="internal"
        )
    )
    return _response(HTTP_500_INTERNAL_SERVER_ERROR, body)
