"""The gateway's Litestar app: `create_app(settings)` builds everything, the lifespan opens the clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.openapi import OpenAPIConfig

from gateway.cache import MemoryCache, NatsCache, ReviewCache
from gateway.checks import RuffChecker
from gateway.errors import (
    AuthenticationError,
    ConfigError,
    GatewayError,
    handle_exception,
    handle_validation_error,
    malformed_body,
)
from gateway.metrics import MetricsController, http_metrics
from gateway.review import Reviewer, ReviewLimits
from gateway.routes import ROUTES, checks_route
from gateway.settings import Settings
from gateway.tunnel import SshTunnel
from gateway.upstream import Upstream, build_providers
from servicekit.access import access_middleware
from servicekit.bodies import require_utf8_body
from servicekit.request_id import request_id_middleware

log = logging.getLogger("gateway.app")


def _provide(value: Any) -> Provide:
    """A dependency that is always `value`: built once in `create_app`, opened in the lifespan."""
    return Provide(lambda: value, sync_to_thread=False, use_cache=True)


def create_app(settings: Settings | None = None) -> Litestar:
    """The gateway app for `settings` (read from the environment when None).

    Raises pydantic's ValidationError for bad settings, e.g. a provider without its API key.
    """
    settings = settings or Settings()
    chain = settings.provider_chain
    tunnel = SshTunnel(settings) if settings.local_llm_ssh_host and "local" in chain else None
    upstream = Upstream(settings, build_providers(settings, tunnel))
    cache: ReviewCache
    if settings.nats_url:
        cache = NatsCache(
            settings.nats_url,
            settings.review_cache_bucket,
            settings.review_cache_ttl,
            settings.nats_replicas,
            start_wait_s=settings.nats_start_wait_s,
            max_bytes=settings.review_cache_max_bytes,
            max_entry_bytes=settings.review_cache_max_entry_bytes,
            timeout_s=settings.review_cache_timeout_s,
        )
    else:
        cache = MemoryCache(
            settings.review_cache_ttl,
            settings.review_cache_size,
            settings.review_cache_max_bytes,
            settings.review_cache_max_entry_bytes,
        )
    limits = ReviewLimits(
        max_suggestions=settings.review_max_suggestions,
        max_code_bytes=settings.review_max_code_bytes,
        max_tokens=settings.review_max_tokens,
        temperature=settings.review_temperature,
    )
    reviewer = Reviewer(upstream, upstream.providers, cache, RuffChecker(), limits)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                if tunnel is not None:
                    await tunnel.open()
                    stack.push_async_callback(tunnel.close)
                await upstream.open()
                stack.push_async_callback(upstream.aclose)
                await cache.open()
                stack.push_async_callback(cache.close)
            except ConfigError as exc:
                log.error("cannot start: %s", exc.message)
                raise
            log.info("gateway ready: providers %s", " -> ".join(chain))
            yield

    return Litestar(
        route_handlers=[
            *ROUTES,
            checks_route(settings.gateway_checks_max_bytes),
            *([MetricsController] if settings.metrics_enabled else []),
        ],
        lifespan=[lifespan],
        # One dependency per handler: Litestar resolves two or more at one level in an anyio task
        # group, a task each, which cost ~0.1 ms of the gateway's 1 ms budget per passthrough call.
        dependencies={"upstream": _provide(upstream), "reviewer": _provide(reviewer)},
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
