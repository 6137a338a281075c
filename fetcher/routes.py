"""The fetcher's HTTP routes, on FETCHER_HEALTH_PORT: `GET /health`, and `GET /metrics` when
METRICS_ENABLED. The work itself comes over NATS (fetcher.subscribers)."""

from __future__ import annotations

import json
from typing import Any

from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import ASGIApp
from faststream.nats import NatsBroker

from fetcher.metrics import metrics_app
from fetcher.settings import Settings
from fetcher.subscribers import FETCHER_KEY


def asgi_routes(broker: NatsBroker, settings: Settings) -> list[tuple[str, ASGIApp]]:
    """The routes `AsgiFastStream` serves."""
    return [
        ("/health", health(broker, settings)),
        *([("/metrics", metrics_app())] if settings.metrics_enabled else []),
    ]


def health(broker: NatsBroker, settings: Settings) -> ASGIApp:
    """200 once the lifespan has started the fetcher and NATS answers a ping within 1 s, else 503."""

    @get(include_in_schema=False)
    async def answer(scope: Any) -> AsgiResponse:
        healthy = broker.context.get(FETCHER_KEY) is not None and await broker.ping(timeout=1.0)
        body = {"status": "ok" if healthy else "unavailable", "nats": settings.nats_url}
        return AsgiResponse(
            json.dumps(body).encode(), 200 if healthy else 503, headers={"content-type": "application/json"}
        )

    return answer
