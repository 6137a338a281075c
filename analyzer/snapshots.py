"""Read stored snapshots from the Object Store, and keep recently used ones decoded and indexed in memory.

The cache is a cache, not state: any analyzer can rebuild any entry from NATS, and evicting one
only costs time. Entries are keyed by the snapshot's Object Store key (`owner/repo@sha`), which
names one commit's files for ever, so an entry never goes stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.js.errors import ObjectNotFoundError
from nats.js.object_store import ObjectStore

from analyzer.errors import NatsUnavailable, SnapshotUnavailable
from analyzer.locate import SnapshotIndex
from jobs_contract import Snapshot, decode_snapshot

logger = logging.getLogger("analyzer.snapshots")


@dataclass(frozen=True)
class LoadedSnapshot:
    key: str
    snapshot: Snapshot
    index: SnapshotIndex
    # Stored (encoded) size: what the cache's byte bound counts.
    size: int


def _decode_and_index(key: str, data: bytes) -> tuple[Snapshot, SnapshotIndex]:
    try:
        snapshot = decode_snapshot(data)
    except msgspec.DecodeError as exc:
        raise SnapshotUnavailable(
            f"the stored files of {key} are unreadable ({exc}); start a new job for this repository",
            snapshot=key,
        ) from exc
    return snapshot, SnapshotIndex(snapshot.files, snapshot.repo)


class SnapshotCache:
    """Snapshots by Object Store key, loaded once however many requests ask at the same time.

    At most `max_entries` entries and `max_bytes` stored bytes are kept (the most recently used
    entry always stays, however large).
    """

    def __init__(self, repos: ObjectStore, *, max_entries: int, max_bytes: int) -> None:
        self._repos = repos
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, LoadedSnapshot] = OrderedDict()
        self._bytes = 0
        self._loading: dict[str, asyncio.Task[LoadedSnapshot]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    async def get(self, key: str) -> LoadedSnapshot:
        """The snapshot stored under `key`, decoded and indexed.

        Raises SnapshotUnavailable (409) if it is missing or unreadable, NatsUnavailable (503) if
        NATS does not answer.
        """
        loaded = self._entries.get(key)
        if loaded is not None:
            self._entries.move_to_end(key)
            return loaded
        task = self._loading.get(key)
        if task is None:
            # A task of its own, not the request's: a client that hangs up does not cancel the load
            # that other requests wait on.
            task = asyncio.create_task(self._load_and_remember(key), name=f"load snapshot {key}")
            self._loading[key] = task
            task.add_done_callback(self._loaded)
        return await asyncio.shield(task)

    def _loaded(self, task: asyncio.Task[LoadedSnapshot]) -> None:
        for key, pending in list(self._loading.items()):
            if pending is task:
                del self._loading[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already; none left is not an error

    async def _load_and_remember(self, key: str) -> LoadedSnapshot:
        loaded = await self._load(key)
        self._remember(loaded)
        return loaded

    async def _load(self, key: str) -> LoadedSnapshot:
        started = time.perf_counter()
        try:
            result = await self._repos.get(key)
        except ObjectNotFoundError as exc:
            raise SnapshotUnavailable(
                f"the stored files of {key} are gone from the Object Store; "
                "start a new job for this repository",
                snapshot=key,
            ) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailable(f"could not read snapshot {key} from NATS: {exc!r}") from exc
        data = result.data or b""
        fetched = time.perf_counter()
        # Decoding and indexing a large repository takes a while: off the event loop, so other
        # requests keep being answered meanwhile.
        snapshot, index = await asyncio.to_thread(_decode_and_index, key, data)
        logger.info(
            "snapshot %s loaded: %d files, %d bytes, fetch %.0f ms, decode+index %.0f ms",
            key,
            len(snapshot.files),
            len(data),
            (fetched - started) * 1000,
            (time.perf_counter() - fetched) * 1000,
        )
        return LoadedSnapshot(key=key, snapshot=snapshot, index=index, size=len(data))

    def _remember(self, loaded: LoadedSnapshot) -> None:
        self._entries[loaded.key] = loaded
        self._bytes += loaded.size
        while len(self._entries) > 1 and (
            len(self._entries) > self._max_entries or self._bytes > self._max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
            logger.info("snapshot %s evicted from the cache", evicted.key)
