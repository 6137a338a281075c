"""What model_host's handlers use: one ModelHost, built in `create_app`, its model loaded in the
background by the lifespan, and its worker thread shut down whatever happens.

The lifespan enters both into a ResourceStack (servicekit.lifespan), one line each: a stop waits
for a load under way (it runs in the host's thread), then shuts the thread down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing

from litestar import Litestar
from litestar.di import Provide

from model_host.host import ModelHost
from servicekit.lifespan import ResourceStack

# Where the app's state keeps its ModelHost, for `python -m model_host`'s stop signal (handlers
# get it through Provide).
HOST_KEY = "model_host"


def provide(host: ModelHost) -> Provide:
    """The dependency `host` of the handlers."""

    def provide_host() -> ModelHost:
        return host

    return Provide(provide_host, sync_to_thread=False)


def lifespan(host: ModelHost) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the model loads in the background while the app serves (503 until then)."""

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        async with ResourceStack() as stack:
            stack.enter_context(closing(host))
            await stack.enter_async_context(loading(host))
            yield

    return resources


@asynccontextmanager
async def loading(host: ModelHost) -> AsyncIterator[None]:
    """`host.load()` in the background for the block; the end waits for it (it never raises: a
    failed load is the host's state, and `on_load_failure`'s)."""
    load = asyncio.create_task(host.load())
    try:
        yield
    finally:
        await load
