"""The gateway's Litestar app: `create_app(settings)` builds everything, the lifespan opens the clients."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from litestar import Litestar

from gateway.cache import MemoryCache, NatsCache, ReviewCache
from gateway.checks import RuffChecker
from gateway.errors import ConfigError, GatewayError, handle_exception
from gateway.logs import request_id_middleware
from gateway.review import Reviewer, ReviewLimits
from gateway.routes import ROUTES, Gateway
from gateway.settings import Settings
from gateway.tunnel import SshTunnel
from gateway.upstream import Upstream, build_providers

log = logging.getLogger("gateway.app")


def create_app(settings: Settings | None = None, *, ssl_context: ssl.SSLContext | None = None) -> Litestar:
    """The gateway app for `settings` (read from the environment when None).

    `ssl_context` replaces the TLS settings for https providers (tests; else LLM_CA_BUNDLE).
    Raises pydantic's ValidationError for bad settings, e.g. a provider without its API key.
    """
    settings = settings or Settings()
    chain = settings.provider_chain

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                tunnel = None
                if settings.local_llm_ssh_host and "local" in chain:
                    tunnel = await SshTunnel.open(settings)
                    stack.push_async_callback(tunnel.close)
                upstream = Upstream(settings, ssl_context)
                stack.push_async_callback(upstream.aclose)
                cache: ReviewCache
                if settings.nats_url:
                    cache = await NatsCache.connect(
                        settings.nats_url,
                        settings.review_cache_bucket,
                        settings.review_cache_ttl,
                        settings.nats_replicas,
                    )
                else:
                    cache = MemoryCache(settings.review_cache_ttl, settings.review_cache_size)
                stack.push_async_callback(cache.close)
            except ConfigError as exc:
                log.error("cannot start: %s", exc.message)
                raise
            providers = build_providers(settings, tunnel.base_url if tunnel else None)
            limits = ReviewLimits(
                max_suggestions=settings.review_max_suggestions,
                max_code_bytes=settings.review_max_code_bytes,
                max_tokens=settings.review_max_tokens,
                temperature=settings.review_temperature,
            )
            reviewer = Reviewer(upstream, providers, chain, cache, RuffChecker(), limits)
            app.state.gateway = Gateway(
                upstream=upstream, providers=providers, chain=chain, reviewer=reviewer
            )
            log.info("gateway ready: providers %s", " -> ".join(chain))
            yield

    return Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        exception_handlers={GatewayError: handle_exception, Exception: handle_exception},
        middleware=[request_id_middleware],
        openapi_config=None,
        # The gateway logs through its own logger (logs.py); Litestar must not reconfigure the root one.
        logging_config=None,
        debug=False,
    )
