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

# ty's pace on this project's 2-core machine: the 31.5 MB stdlib-sized snapshot in 9.3-9.7 s
# (bench typecheck). A check expected to take longer than a review may wait is not waited for.
CHECKED_BYTES_PER_S = 3_000_000


class _Checked:
    """A check's findings per path, and the paths it set aside (not checked: too costly alone)."""

    __slots__ = ("found", "skipped")

    def __init__(self, found: dict[str, list[TypeFinding]], skipped: dict[str, str]) -> None:
        self.found = found
        self.skipped = skipped


_Result = _Checked | None


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
        # When each check began (monotonic): reviews wait for it only until `wait_s` after that.
        self._began: dict[str, float] = {}
        # How long each check is expected to take, by its bytes of Python.
        self._expected_s: dict[str, float] = {}
        self._closed = False

    def start(self, key: str, files: Mapping[str, bytes]) -> None:
        """Begin the check of snapshot `key` in the background, unless it was begun before."""
        if self._closed:
            return
        if key in self._checks:
            self._checks.move_to_end(key)
            return
        self._checks[key] = asyncio.create_task(self._check(key, files), name=f"typecheck {key}")
        self._began[key] = time.monotonic()
        size = sum(len(data) for path, data in files.items() if path.endswith(".py"))
        self._expected_s[key] = size / CHECKED_BYTES_PER_S
        while len(self._checks) > self._entries:
            gone, evicted = self._checks.popitem(last=False)
            self._began.pop(gone, None)
            self._expected_s.pop(gone, None)
            evicted.cancel()

    async def findings(
        self, key: str, files: Mapping[str, bytes], path: str, *, wait_s: float
    ) -> list[TypeFinding] | None:
        """The findings in `path` of snapshot `key` (whose files are `files`), starting its check
        if none was; None when the check failed, set the file aside, or has not ended within
        `wait_s` seconds of its start (it goes on: a later call may have them).

        The wait counts from the check's start, not the call's: a small snapshot's check ends
        within it and every review has its findings; while a large one's runs, only the reviews
        of its first `wait_s` seconds wait, the others go on at once. A check expected to take
        longer than `wait_s` (CHECKED_BYTES_PER_S) is not waited for at all.
        """
        self.start(key, files)
        check = self._checks.get(key)
        if check is None:  # closed
            return None
        if not check.done():
            left = self._began.get(key, time.monotonic()) + wait_s - time.monotonic()
            if left > 0 and self._expected_s.get(key, 0.0) <= wait_s:
                await asyncio.wait([check], timeout=left)
            if not check.done():
                return None
        if check.cancelled():
            return None
        result = check.result()
        if result is None or path in result.skipped:
            return None
        return list(result.found.get(path, []))

    async def aclose(self) -> None:
        """Stop the checks still running (their ty processes are killed) and forget all results."""
        self._closed = True
        checks = list(self._checks.values())
        self._checks.clear()
        self._began.clear()
        self._expected_s.clear()
        for check in checks:
            check.cancel()
        if checks:
            await asyncio.wait(checks)

    async def _check(self, key: str, files: Mapping[str, bytes]) -> _Result:
        async with self._running:
            started = time.perf_counter()
            skipped: dict[str, str] = {}
            try:
                found = await check_snapshot(files, self._budget, ty=self._ty, skipped=skipped)
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
            "type check of %s: %d files, %d findings, %.1f s%s",
            key,
            sum(1 for path in files if path.endswith(".py")),
            sum(len(findings) for findings in found.values()),
            time.perf_counter() - started,
            f"; set aside: {', '.join(sorted(skipped))} ({next(iter(skipped.values()))})" if skipped else "",
        )
        return _Checked(found, skipped)
