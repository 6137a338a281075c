"""One generation at a time per model context, off the event loop, in fair FIFO order.

`GenerationSlot` owns the model's single worker thread. Requests wait their turn in arrival
order (asyncio.Lock is documented fair); beyond `queue_size` waiting, a request is refused with
QueueFullError (503 + Retry-After) instead of queuing without bound. A waiting request that is
cancelled (its client went away) simply leaves the queue; a running one sets the thread's
`cancelled` flag, which the generation loop checks after every token, and keeps the slot until
the thread has really stopped, so two generations never share the context.

`shut()` (on SIGTERM) answers every waiting request, and any that arrives later, with
ShuttingDownError (503) at once; the running generation goes on until uvicorn's graceful
shutdown timeout cancels it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from model_host.engines import Engine
from model_host.errors import GenerationFailedError, QueueFullError, ShuttingDownError, UnavailableError
from model_host.generation import Finish, Generation, generate
from model_host.metrics import QUEUE_DEPTH, QUEUE_WAIT

T = TypeVar("T")


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _outlast(future: asyncio.Future[T], cancelled: threading.Event) -> T:
    """The worker's result. If this task is cancelled meanwhile, stop the worker, wait it out, re-raise."""
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            interrupted = True
            cancelled.set()
    if interrupted:
        raise asyncio.CancelledError
    return future.result()


class GenerationSlot:
    """The model context: one generation at a time, up to `queue_size` more waiting."""

    def __init__(self, executor: ThreadPoolExecutor, *, queue_size: int, retry_after_s: int) -> None:
        self.executor = executor
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._shut = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Requests queued behind the running one."""
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def shut(self) -> None:
        """Start no more generations: waiting and later requests get ShuttingDownError."""
        self._shut.set()

    def _refuse_when_shut(self) -> None:
        if self._shut.is_set():
            raise ShuttingDownError(
                "the model host is shutting down; retry on another replica or after its restart",
                retry_after_s=self.retry_after_s,
            )

    def check_room(self) -> None:
        """Raise ShuttingDownError when shut, QueueFullError if a request arriving now would be refused."""
        self._refuse_when_shut()
        if self._lock.locked() and self._waiting >= self.queue_size:
            raise QueueFullError(
                f"the model is busy and {self._waiting} request(s) already wait (MODEL_QUEUE_SIZE="
                f"{self.queue_size}); retry in {self.retry_after_s} s",
                retry_after_s=self.retry_after_s,
            )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this request's turn (FIFO); QueueFullError if too many wait already."""
        self.check_room()
        self._waiting += 1
        QUEUE_DEPTH.inc()
        arrived = time.perf_counter()
        try:
            await self._acquire()
        finally:
            self._waiting -= 1
            QUEUE_DEPTH.dec()
        QUEUE_WAIT.observe(time.perf_counter() - arrived)
        try:
            yield
        finally:
            self._lock.release()

    async def _acquire(self) -> None:
        """The lock, in FIFO order; ShuttingDownError instead if the slot is shut meanwhile."""
        if not self._lock.locked():
            await self._lock.acquire()
            if self._shut.is_set():  # shut while this request took the free lock
                self._lock.release()
                self._refuse_when_shut()
            return
        acquiring = asyncio.ensure_future(self._lock.acquire())
        shut = asyncio.ensure_future(self._shut.wait())
        try:
            await asyncio.wait((acquiring, shut), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # this request was cancelled (its client went away)
            await self._abandon(acquiring)
            raise
        finally:
            shut.cancel()
        if self._shut.is_set():
            await self._abandon(acquiring)
            self._refuse_when_shut()

    async def _abandon(self, acquiring: asyncio.Future[Any]) -> None:
        """Leave the queue: stop waiting for the lock, or give it back if it just came."""
        if not acquiring.done():
            acquiring.cancel()
            await asyncio.wait((acquiring,))
        if not acquiring.cancelled():
            self._lock.release()

    async def run(self, work: Callable[[threading.Event], T]) -> T:
        """Run `work(cancelled)` in the worker thread in this request's turn."""
        async with self.turn():
            cancelled = threading.Event()
            context = contextvars.copy_context()  # the worker's log lines keep the request id
            future = asyncio.get_running_loop().run_in_executor(self.executor, context.run, work, cancelled)
            return await _outlast(future, cancelled)

    async def complete(self, engine: Engine, job: Generation) -> tuple[str, Finish]:
        """The whole completion text and how it ended. GenerationFailedError if the engine raised."""

        def work(cancelled: threading.Event) -> tuple[str, Finish]:
            pieces: list[str] = []
            for item in generate(engine, job, cancelled):
                if isinstance(item, Finish):
                    return "".join(pieces), item
                pieces.append(item)
            raise AssertionError("generate ended without a Finish")

        try:
            return await self.run(work)
        except (asyncio.CancelledError, UnavailableError):  # queue full, shutting down: not the model's fault
            raise
        except Exception as exc:
            raise GenerationFailedError(
                f"the model failed while generating: {type(exc).__name__}: {exc}"
            ) from exc

    async def stream(self, engine: Engine, job: Generation) -> AsyncIterator[str | Finish]:
        """Text pieces as the worker produces them, then a Finish; GenerationFailedError if it raised."""
        async with self.turn():
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str | Finish | _Failed] = asyncio.Queue()
            cancelled = threading.Event()

            def work() -> None:
                try:
                    for item in generate(engine, job, cancelled):
                        loop.call_soon_threadsafe(queue.put_nowait, item)
                except Exception as exc:
                    loop.call_soon_threadsafe(queue.put_nowait, _Failed(exc))

            future = loop.run_in_executor(self.executor, contextvars.copy_context().run, work)
            try:
                while True:
                    item = await queue.get()
                    if isinstance(item, _Failed):
                        error = item.error
                        raise GenerationFailedError(
                            f"the model failed while generating: {type(error).__name__}: {error}"
                        ) from error
                    yield item
                    if isinstance(item, Finish):
                        break
            finally:
                if not future.done():
                    cancelled.set()
                await _outlast(future, cancelled)
