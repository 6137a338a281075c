"""What the gateway's handlers use: built in `create_app`, opened in its lifespan, closed whatever happens.

`build(settings)` makes the SSH tunnel (with LOCAL_LLM_SSH_HOST), the upstream client and its
providers, the review cache and the reviewer, and returns the dependencies the handlers ask for by
name (`upstream`, `reviewer`) with the lifespan that opens them. The lifespan opens each one into a
ResourceStack (servicekit.lifespan), one line each: if one fails to open (NATS of the shared cache
never ready, say), those already open are closed in reverse order and that failure is the error
reported; a stop closes them all the same way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.di import Provide

from gateway.cache import MemoryCache, NatsCache, ReviewCache
from gateway.checks import RuffChecker
from gateway.errors import ConfigError
from gateway.review import Reviewer, ReviewLimits
from gateway.settings import Settings
from gateway.tunnel import SshTunnel
from gateway.upstream import Upstream, build_providers
from servicekit.lifespan import ResourceStack, started

# The name the gateway's start-up lines have always had (they were written by gateway/app.py).
log = logging.getLogger("gateway.app")

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def provide(value: Any) -> Provide:
    """A dependency that is always `value`: built once in `create_app`, opened in the lifespan."""
    return Provide(lambda: value, sync_to_thread=False, use_cache=True)


def build(settings: Settings) -> tuple[dict[str, Provide], Lifespan]:
    """The handlers' dependencies by name, and the lifespan that opens (and closes) them.

    Raises pydantic's ValidationError for bad settings, e.g. a provider without its API key.
    """
    chain = settings.provider_chain
    tunnel = SshTunnel(settings) if settings.local_llm_ssh_host and "local" in chain else None
    upstream = Upstream(settings, build_providers(settings, tunnel))
    cache = review_cache(settings)
    reviewer = Reviewer(upstream, upstream.providers, cache, RuffChecker(), review_limits(settings))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with ResourceStack() as stack:
            try:
                if tunnel is not None:
                    await stack.enter_async_context(started(tunnel.open, tunnel.close))
                await stack.enter_async_context(started(upstream.open, upstream.aclose))
                await stack.enter_async_context(started(cache.open, cache.close))
            except ConfigError as exc:
                log.error("cannot start: %s", exc.message)
                raise
            log.info("gateway ready: providers %s", " -> ".join(chain))
            yield

    # One dependency per handler: Litestar resolves two or more at one level in an anyio task
    # group, a task each, which cost ~0.1 ms of the gateway's 1 ms budget per passthrough call.
    return {"upstream": provide(upstream), "reviewer": provide(reviewer)}, lifespan


def review_cache(settings: Settings) -> ReviewCache:
    """The shared cache in a NATS KV bucket when NATS_URL is set, else one in this process."""
    if settings.nats_url:
        return NatsCache(
            settings.nats_url,
            settings.review_cache_bucket,
            settings.review_cache_ttl,
            settings.nats_replicas,
            start_wait_s=settings.nats_start_wait_s,
            max_bytes=settings.review_cache_max_bytes,
            max_entry_bytes=settings.review_cache_max_entry_bytes,
            timeout_s=settings.review_cache_timeout_s,
        )
    return MemoryCache(
        settings.review_cache_ttl,
        settings.review_cache_size,
        settings.review_cache_max_bytes,
        settings.review_cache_max_entry_bytes,
    )


def review_limits(settings: Settings) -> ReviewLimits:
    return ReviewLimits(
        max_suggestions=settings.review_max_suggestions,
        max_code_bytes=settings.review_max_code_bytes,
        max_tokens=settings.review_max_tokens,
        temperature=settings.review_temperature,
    )
