"""The fetcher as a FastStream application: `create_app(settings)` wires the broker and what it
consumes (fetcher.subscribers), the lifespan that opens what the handlers use (fetcher.resources)
and the health route (fetcher.routes); nothing else holds a module-level app.

The app is ASGI (FastStream's AsgiFastStream) only to serve `GET /health` on FETCHER_HEALTH_PORT;
the work itself is the JetStream pull subscriber on FETCH_STREAM / FETCH_DURABLE.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.asgi import AsgiFastStream
from faststream.specification import AsyncAPI

from fetcher import resources
from fetcher.routes import asgi_routes
from fetcher.settings import Settings
from fetcher.subscribers import new_broker, subscribe
from servicekit.logs import setup_logging


def create_app(settings: Settings | None = None, *, configure_logging: bool = True) -> AsgiFastStream:
    """Build the fetcher app: broker, subscribers, lifespan (JetStream set-up, GitHub client)."""
    settings = settings or Settings()
    if configure_logging:
        setup_logging("fetcher", settings.log_level, settings.log_format, settings.secret_values())
    broker, on_connected = new_broker(settings)
    requests = subscribe(broker, settings)
    return AsgiFastStream(
        broker,
        logger=logging.getLogger("fetcher.app"),
        asgi_routes=asgi_routes(broker, settings),
        lifespan=resources.lifespan(broker, settings, on_connected),
        after_startup=[resources.ready(settings)],
        on_shutdown=[resources.stop_jobs(broker, requests, settings)],
        specification=AsyncAPI(
            title="codereview fetcher",
            version="0.1.0",
            description=(
                "Downloads GitHub repositories for analyzer jobs: consumes fetch requests, stores "
                "the Python files of each commit in the Object Store `repos`, keeps the job record "
                "in the KV bucket `jobs`, and announces progress, completion and failure."
            ),
        ),
    )


def asyncapi_document(app: AsgiFastStream) -> dict[str, Any]:
    """The AsyncAPI (3.0) document FastStream generates for the app, as JSON-ready data."""
    assert app.schema is not None
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return document
