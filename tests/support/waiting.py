"""Waiting in a test for a state it drives towards, where there is nothing to await on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Until `condition()` holds; TimeoutError after `timeout` seconds.

    A guard against a hang, not a timing assertion: the bound is generous for a loaded machine.
    """
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
