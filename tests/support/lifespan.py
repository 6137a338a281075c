"""What the lifespan tests of every service share: a record of what an app opened, how many
connections the NATS server still holds (by its own monitoring endpoint), and the error that
stopped a start."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest


def spy_on(monkeypatch: pytest.MonkeyPatch, kinds: tuple[type, ...]) -> dict[type, list[Any]]:
    """The instances of `kinds` created from now on (a spy on their constructors: the real ones
    run), to check each one's own word that it was closed."""
    instances: dict[type, list[Any]] = {kind: [] for kind in kinds}
    for kind in kinds:
        real = kind.__init__  # type: ignore[misc]  # the class's own, which the spy calls

        def spying(
            self: Any, *args: Any, __real: Callable[..., None] = real, __kind: type = kind, **kwargs: Any
        ) -> None:
            __real(self, *args, **kwargs)
            instances[__kind].append(self)

        monkeypatch.setattr(kind, "__init__", spying)
    return instances


def nats_connections(monitor_port: int) -> int:
    """How many client connections the NATS server has open, by its own monitoring endpoint."""
    connz = httpx.get(f"http://127.0.0.1:{monitor_port}/connz", timeout=5).json()
    count: int = connz["num_connections"]
    return count


async def failed_start(lifespan: AbstractAsyncContextManager[object]) -> BaseException:
    """The error that stopped an app's `lifespan` (Litestar's `app.lifespan()`, FastStream's
    `app.start_lifespan_context()`) from starting, out of the exception groups its task groups
    wrap it in."""
    try:
        async with lifespan:
            pytest.fail("the app started")
    except BaseException as error:
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        return error
    raise AssertionError("unreachable")
