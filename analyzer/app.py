"""The analyzer's app factory: `create_app(settings)` wires the routes (analyzer.routes), what they
use (analyzer.resources, opened in the lifespan), middleware and error handlers; `python -m
analyzer` serves it."""

from __future__ import annotations

from litestar import Litestar
from litestar.exceptions import HTTPException, TooManyRequestsException, ValidationException
from litestar.exceptions.responses import create_exception_response

from analyzer import resources
from analyzer.error_handlers import (
    analyzer_error_handler,
    rate_limited_handler,
    refusal_handler,
    unexpected_error_handler,
    validation_error_handler,
)
from analyzer.errors import AnalyzerError, Unauthorized, malformed_body
from analyzer.metrics import MetricsController, http_metrics
from analyzer.routes import ROUTES
from analyzer.scan.model import PieceChecker
from analyzer.scan.routes import SCAN_ROUTES
from analyzer.settings import Settings
from servicekit.access import access_middleware
from servicekit.bodies import require_utf8_body
from servicekit.request_id import request_id_middleware


def create_app(settings: Settings | None = None, *, scan_checker: PieceChecker | None = None) -> Litestar:
    """The analyzer app; NATS, the gateway client and the snapshot cache open in its lifespan.
    `scan_checker` checks the scans' pieces (None: through the gateway's POST /checks)."""
    settings = settings or Settings()
    return Litestar(
        route_handlers=[*ROUTES, *SCAN_ROUTES, *([MetricsController] if settings.metrics_enabled else [])],
        lifespan=[resources.lifespan(settings, scan_checker)],
        dependencies=resources.DEPENDENCIES,
        # The request id first, so that a 401 or 429 carries one too; metrics count refusals.
        middleware=[
            request_id_middleware,
            *([http_metrics()] if settings.metrics_enabled else []),
            *access_middleware(
                settings, service="analyzer", unauthorized=Unauthorized, answer=refusal_handler
            ),
        ],
        before_request=require_utf8_body(malformed_body),
        # Logging is set up by servicekit.logs; Litestar's default would add a root handler at INFO
        # that logs every request of the HTTP client libraries at INFO, a cost per request.
        logging_config=None,
        exception_handlers={
            AnalyzerError: analyzer_error_handler,
            ValidationException: validation_error_handler,
            TooManyRequestsException: rate_limited_handler,
            HTTPException: create_exception_response,
            Exception: unexpected_error_handler,
        },
    )
