"""Opening what a service's handlers use, and closing it whatever happens.

Every service's lifespan opens its clients, worker pools and subscriptions one by one into a
`ResourceStack`: when a later one fails to open (NATS up but its JetStream never ready, say),
the ones already open are closed, in reverse order, and the error reported is the one that
stopped the start, never one raised while closing after it (those are logged). The same holds
on a stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import ParamSpec, Protocol, TypeVar

log = logging.getLogger("servicekit.lifespan")


class ClosesSync(Protocol):
    def close(self) -> None: ...


class ClosesAsync(Protocol):
    def close(self) -> Awaitable[None]: ...


SyncT = TypeVar("SyncT", bound=ClosesSync)
AsyncT = TypeVar("AsyncT", bound=ClosesAsync)
T = TypeVar("T")
P = ParamSpec("P")


class ResourceStack(AsyncExitStack):
    """An AsyncExitStack that reports the first error.

    Like AsyncExitStack, every exit runs, latest first, whatever the others raise. Unlike it, an
    error raised while closing never replaces the one that ended the block (a failed start, or a
    failure while serving): that one propagates, and the closing errors are logged. With no error
    in the block, the first closing error propagates and the later ones are logged. (Exits pushed
    with `push_async_exit`, `push` or `callback` are not told apart: an error of theirs is
    reported as AsyncExitStack would, unless the block raised.)
    """

    def __init__(self) -> None:
        super().__init__()
        # Errors raised by exits (not the block's own error passed through), in the order raised.
        self._closing_errors: list[BaseException] = []

    async def enter_async_context(self, cm: AbstractAsyncContextManager[T]) -> T:
        """Enter `cm` (as AsyncExitStack does); its exit runs when the stack closes."""
        cls = type(cm)
        value = await cls.__aenter__(cm)
        exit_ = cls.__aexit__

        async def exit_recorded(
            exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
        ) -> bool | None:
            try:
                return await exit_(cm, exc_type, exc, tb)
            except BaseException as error:
                if error is not exc:
                    self._closing_errors.append(error)
                raise

        self.push_async_exit(exit_recorded)
        return value

    def push_async_callback(
        self, callback: Callable[P, Awaitable[T]], /, *args: P.args, **kwds: P.kwargs
    ) -> Callable[P, Awaitable[T]]:
        """Run `await callback(*args, **kwds)` when the stack closes (as AsyncExitStack does)."""

        async def recorded() -> None:
            try:
                await callback(*args, **kwds)
            except BaseException as error:
                self._closing_errors.append(error)
                raise

        super().push_async_callback(recorded)
        return callback

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return bool(await super().__aexit__(exc_type, exc, tb))
        except BaseException as raised:  # sorted out below, then raised again
            failure = raised
        first = exc if exc is not None else (self._closing_errors[0] if self._closing_errors else failure)
        for error in self._closing_errors:
            if error is not first:
                # Its context chain leads to the error reported, logged apart: only its own part.
                error.__suppress_context__ = True
                log.error("while closing, after %s: %r", type(first).__name__, error, exc_info=error)
        # Raised again as AsyncExitStack does, keeping the context it had (raising it inside
        # __aexit__ would chain it to itself or to a later error).
        context = first.__context__
        try:
            raise first
        except BaseException:
            first.__context__ = context
            raise


@asynccontextmanager
async def closing_in_thread(resource: SyncT) -> AsyncIterator[SyncT]:
    """`resource` for the block, then its blocking `close()` in a thread (worker pools wait for
    their processes to exit): the event loop goes on meanwhile."""
    try:
        yield resource
    finally:
        await asyncio.to_thread(resource.close)


@asynccontextmanager
async def closing_async(resource: AsyncT) -> AsyncIterator[AsyncT]:
    """`resource` for the block, then `await resource.close()`."""
    try:
        yield resource
    finally:
        await resource.close()


@asynccontextmanager
async def started(
    start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[object]]
) -> AsyncIterator[None]:
    """`await start()`, the block, then `await stop()`: for what opens and closes by two methods.
    A `start` that raises is not stopped (it opened nothing the caller could close)."""
    await start()
    try:
        yield
    finally:
        await stop()
