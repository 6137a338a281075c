"""The gateway's app factory: `create_app(settings)` wires the routes (gateway.routes), what they
use (gateway.resources: built here, opened in the lifespan), middleware and error handlers."""

from __future__ import annotations

from litestar import Litestar
from litestar.exceptions import ValidationException
from litestar.openapi import OpenAPIConfig

from gateway import resources
from gateway.errors import (
    AuthenticationError,
    GatewayError,
    handle_exception,
    handle_validation_error,
    malformed_body,
)
from gateway.metrics import MetricsController, http_metrics
from gateway.routes import ROUTES, checks_route
from gateway.settings import Settings
from servicekit.access import access_middleware
from servicekit.bodies import require_utf8_body
from servicekit.request_id import request_id_middleware


def create_app(settings: Settings | None = None) -> Litestar:
    """The gateway app for `settings` (read from the environment when None).

    Raises pydantic's ValidationError for bad settings, e.g. a provider without its API key.
    """
    settings = settings or Settings()
    dependencies, lifespan = resources.build(settings)
    return Litestar(
        route_handlers=[
            *ROUTES,
            checks_route(settings.gateway_checks_max_bytes),
            *([MetricsController] if settings.metrics_enabled else []),
        ],
        lifespan=[lifespan],
        dependencies=dependencies,
        before_request=require_utf8_body(malformed_body),
        exception_handlers={
            GatewayError: handle_exception,
            ValidationException: handle_validation_error,
            Exception: handle_exception,
        },
        # The request id first, so that a 401 or 429 carries one too; metrics count refusals.
        middleware=[
            request_id_middleware,
            *([http_metrics()] if settings.metrics_enabled else []),
            *access_middleware(
                settings, service="gateway", unauthorized=AuthenticationError, answer=handle_exception
            ),
        ],
        openapi_config=OpenAPIConfig(title="codereview gateway", version="1.0.0"),
        # servicekit.logs is the one logging setup; Litestar must not reconfigure the root logger.
        logging_config=None,
        debug=False,
    )
