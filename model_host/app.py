"""model_host's app factory: `create_app` wires the routes (model_host.routes), the ModelHost they
use (model_host.resources: its model loads in the lifespan), middleware and error handlers."""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig

from model_host import resources
from model_host.engines import Engine, load_engine
from model_host.errors import (
    ModelHostError,
    http_exception_handler,
    malformed_body,
    model_host_error_handler,
    unexpected_error_handler,
    validation_error_handler,
)
from model_host.host import ModelHost
from model_host.metrics import MetricsController, http_metrics
from model_host.resources import HOST_KEY
from model_host.routes import ROUTES
from model_host.settings import Settings
from servicekit.bodies import require_utf8_body
from servicekit.request_id import request_id_middleware


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    loader: Callable[[Settings], Engine] = load_engine,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> Litestar:
    """The model_host app.

    `engine`: an already loaded model (several apps can share one); otherwise the lifespan loads the model
    with `loader` (default: MODEL_PATH with MODEL_ENGINE) in the background, and `/health`
    answers 503 until it is ready. `on_load_failure` is called if that load fails
    (`python -m model_host` then exits non-zero).
    """
    settings = settings or Settings()
    host = ModelHost(settings, engine=engine, loader=loader, on_load_failure=on_load_failure)
    return Litestar(
        route_handlers=[*ROUTES, *([MetricsController] if settings.metrics_enabled else [])],
        middleware=[request_id_middleware, *([http_metrics()] if settings.metrics_enabled else [])],
        lifespan=[resources.lifespan(host)],
        state=State({HOST_KEY: host}),
        dependencies={"host": resources.provide(host)},
        before_request=require_utf8_body(malformed_body),
        exception_handlers={
            ModelHostError: model_host_error_handler,
            ValidationException: validation_error_handler,
            HTTPException: http_exception_handler,
            Exception: unexpected_error_handler,
        },
        openapi_config=OpenAPIConfig(title="codereview model_host", version="0.1.0", path="/schema"),
        logging_config=None,  # servicekit.logs is the one logging setup; Litestar would reset the root logger
    )
