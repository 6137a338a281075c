"""Parse a cached snapshot's files in the background, so that no lookup pays a first parse.

`analyzer.locate` parses a file on the first lookup that needs it: `ast.parse` of a large module
takes up to ~100 ms, and the request that happens to touch it waits that long for its worker
(analyzer.parsing). Once a snapshot is in the cache, `IndexWarmer` parses the files no lookup has
parsed yet in a worker process of its own (spawned on first use, at a lower priority so that
requests keep the CPU, with the same budget as a lookup's parse), and hands the tables to the
index with `SnapshotIndex.adopt` in the event loop, a chunk at a time so that no adopt holds the
loop for long.

Requests served meanwhile work as before (they parse what they need themselves). A snapshot
evicted from the cache stops its warm-up at the next chunk. A file that breaks the worker is set
aside (analyzer.parsing) and the warm-up goes on; if anything else fails, lookups keep parsing
lazily.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from analyzer.parsing import ParseBudget, ParserPool, chunks
from analyzer.snapshots import LoadedSnapshot

logger = logging.getLogger("analyzer.warmup")

# About 30 ms of parsing in the worker, and a small table to unpickle and adopt here.
CHUNK_BYTES = 256 * 1024
# Seconds between a snapshot entering the cache and its warm-up starting: the request that loaded
# it (and those queued behind it) are answered first, before the worker is spawned or fed.
WARM_DELAY_S = 1.0
# How much lower the worker's priority is than the server's (os.nice increment).
WORKER_NICENESS = 10


class IndexWarmer:
    """Parses cached snapshots' remaining files in one background process."""

    def __init__(self, budget: ParseBudget, *, chunk_bytes: int | None = None) -> None:
        self._chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._parser = ParserPool(budget, niceness=WORKER_NICENESS)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._warmed: dict[str, LoadedSnapshot] = {}
        self._closed = False

    async def wait(self, key: str) -> None:
        """Until the warm-up of `key` (if any) has ended (the function listing's first page waits)."""
        task = self._tasks.get(key)
        if task is not None:
            await asyncio.wait([task])

    def warm(self, loaded: LoadedSnapshot, still_cached: Callable[[], bool]) -> None:
        """Start parsing the snapshot's unparsed files; stops when `still_cached()` turns false."""
        if self._closed:
            return
        running = self._tasks.get(loaded.key)
        if running is not None:
            if self._warmed.get(loaded.key) is loaded:
                return
            running.cancel()  # an evicted copy of the same snapshot, loaded again: warm the new one
        task = asyncio.create_task(self._warm(loaded, still_cached), name=f"warm index {loaded.key}")
        self._tasks[loaded.key] = task
        self._warmed[loaded.key] = loaded

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(loaded.key) is done:
                del self._tasks[loaded.key]
                del self._warmed[loaded.key]

        task.add_done_callback(forget)

    async def _warm(self, loaded: LoadedSnapshot, still_cached: Callable[[], bool]) -> None:
        await asyncio.sleep(WARM_DELAY_S)
        started = time.perf_counter()
        adopted = 0
        groups = chunks(loaded.index.unparsed(), self._chunk_bytes)
        try:
            for group in groups:
                if not still_cached():
                    logger.info("snapshot %s left the cache: index warm-up stopped", loaded.key)
                    return
                adopted += loaded.index.adopt(await self._parser.parse_files(group))
        except Exception:
            logger.exception("index warm-up of %s failed; lookups parse on demand", loaded.key)
            return
        logger.info(
            "snapshot %s index warmed: %d files parsed in the background (%d chunks) in %.1f s",
            loaded.key,
            adopted,
            len(groups),
            time.perf_counter() - started,
        )

    async def close(self) -> None:
        """Stop every warm-up and the worker process (waits for the chunk it is parsing)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._parser.close)
