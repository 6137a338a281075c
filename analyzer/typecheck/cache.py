"""The type checks of this process's snapshots: each run once, in the background, results kept a while."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping

from analyzer.typecheck.run import TypeCheckBudget, TypeCheckFailed, check_snapshot
from review_contract import TypeFinding

logger = logging.getLogger("analyzer.typecheck")

_Result = dict[str, list[TypeFinding]] | None


class TypeChecks:
    """One type check per snapshot key, at most `concurrency` at once, the last `entries` kept.

    A check that failed is kept as failed (None): a snapshot that timed out once would time out
    again, and every review of it would pay for that. Evicting a check still running stops it.
    """

    def __init__(
        self, budget: TypeCheckBudget, *, concurrency: int = 1, entries: int = 8, ty: str | None = None
    ) -> None:
        self._budget = budget
        self._ty = ty
        self._entries = entries
        self._running = asyncio.Semaphore(concurrency)
        self._checks: OrderedDict[str, asyncio.Task[_Result]] = OrderedDict()
        self._closed = False

    def start(self, key: str, files: Mapping[str, bytes]) -> None:
        """Begin the check of snapshot `key` in the background, unless it was begun before."""
        if self._closed:
            return
        if key in self._checks:
            self._checks.move_to_end(key)
            return
        self._checks[key] = asyncio.create_task(self._check(key, files), name=f"typecheck {key}")
        while len(self._checks) > self._entries:
            _, evicted = self._checks.popitem(last=False)
            evicted.cancel()

    async def findings(
        self, key: str, files: Mapping[str, bytes], path: str, *, wait_s: float
    ) -> list[TypeFinding] | None:
        """The findings in `path` of snapshot `key` (whose files are `files`), starting its check
        if none was; None when the check failed or has not ended within `wait_s` seconds (it goes
        on: a later call may have them)."""
        self.start(key, files)
        check = self._checks.get(key)
        if check is None:  # closed
            return None
        if not check.done():
            await asyncio.wait([check], timeout=wait_s)
            if not check.done():
                return None
        if check.cancelled():
            return None
        result = check.result()
        return None if result is None else list(result.get(path, []))

    async def aclose(self) -> None:
        """Stop the checks still running (their ty processes are killed) and forget all results."""
        self._closed = True
        checks = list(self._checks.values())
        self._checks.clear()
        for check in checks:
            check.cancel()
        if checks:
            await asyncio.wait(checks)

    async def _check(self, key: str, files: Mapping[str, bytes]) -> _Result:
        async with self._running:
            started = time.perf_counter()
            try:
                result = await check_snapshot(files, self._budget, ty=self._ty)
            except TypeCheckFailed as failed:
                logger.warning(
                    "type check of %s failed after %.1f s: %s",
                    key,
                    time.perf_counter() - started,
                    failed.reason,
                )
                return None
            except Exception:
                logger.exception("type check of %s failed", key)
                return None
        logger.info(
            "type check of %s: %d files, %d findings, %.1f s",
            key,
            sum(1 for path in files if path.endswith(".py")),
            sum(len(found) for found in result.values()),
            time.perf_counter() - started,
        )
        return result
