"""Read stored snapshots from the Object Store, and keep recently used ones decoded and indexed in memory.

The cache is a cache, not state: any analyzer can rebuild any entry from NATS, and evicting one
only costs time. Entries are keyed by the snapshot's Object Store key (`owner/repo@sha`), which
names one commit's files for ever, so an entry never goes stale.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import NotFoundError, ObjectDeletedError, ObjectNotFoundError
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_DIGEST_TYPE, OBJ_STREAM_TEMPLATE, ObjectStore

from analyzer.errors import NatsUnavailable, SnapshotExpired, SnapshotUnavailable
from analyzer.locate import ParsedFile, SnapshotIndex
from analyzer.locate.text import Search
from jobs_contract import REPOS_BUCKET, Snapshot, decode_snapshot
from servicekit.nats_calls import ride_through

logger = logging.getLogger("analyzer.snapshots")

# The `Search` of a snapshot's text: (key, files, repo) -> it (analyzer.searching).
SearchFactory = Callable[[str, Mapping[str, bytes], str], Search]

# 64 chunks of 128 KiB: 8 MiB a round trip (a batch comes without flow control: a bounded one
# stays far below what a server buffers for a client before it drops it as slow).
_CHUNKS_PER_FETCH = 64
# Direct get replies (ADR-31): the message's sequence; messages of the stream still matching
# after it (batches only); the status that ends a batch.
_SEQUENCE = "Nats-Sequence"
_NUM_PENDING = "Nats-Num-Pending"
_END_OF_BATCH = "204"


@dataclass(frozen=True)
class LoadedSnapshot:
    key: str
    snapshot: Snapshot
    index: SnapshotIndex
    # Stored (encoded) size: what the cache's byte bound counts.
    size: int


async def read_object(
    js: JetStreamContext, store: ObjectStore, bucket: str, name: str, timeout_s: float
) -> tuple[bytes, str | None]:
    """An object's bytes and its recorded digest (`SHA-256=...`, checked by the caller).

    nats-py's `ObjectStore.get` reads the chunks through an ordered push consumer whose flow
    control stalls on every window (about 1 s for 30 MB here) and, without `writeinto`, grows
    the result with `bytes +=` (quadratic). This reads the same chunks (stream `OBJ_<bucket>`,
    subject `$O.<bucket>.C.<nuid>`, as the Object Store specification lays them out) with
    batched direct gets (ADR-31, nats-server 2.11+), 64 chunks a request: no consumer is created,
    so nothing is left on the stream once the read ends, whether it succeeds, fails or is
    cancelled (a pull consumer per read stayed 30 s, and a stream holds at most 1,000), and any
    replica of the stream answers, the leader or not. A replica that is behind, a stream without
    direct gets or a server without batches is read through the stream leader's message API.
    Raises ObjectNotFoundError when the object is gone, or only some of its chunks are left (the
    bucket's max age removes the chunks, written first, just before the object's metadata),
    TimeoutError and nats errors.
    """
    info = await store.get_info(name)
    if info.is_link():
        link = info.options.link if info.options is not None else None
        if link is None or not link.bucket or not link.name:
            raise ObjectNotFoundError(description=f"object {name} links to a whole bucket")
        linked = await js.object_store(link.bucket)
        # A link never names another link (the Object Store refuses to store one).
        return await read_object(js, linked, link.bucket, link.name, timeout_s)
    if not info.nuid or not info.chunks:
        return b"", None
    stream = OBJ_STREAM_TEMPLATE.format(bucket=bucket)
    subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=bucket, obj=info.nuid)
    parts: list[bytes] = []
    next_seq = await _direct_read(js, stream, subject, info.chunks, parts, timeout_s)
    while len(parts) < info.chunks:
        try:
            message = await js.get_msg(stream, seq=next_seq, subject=subject, next=True)
        except NotFoundError:
            raise ObjectNotFoundError(description=f"object {name} has lost some of its chunks") from None
        parts.append(message.data or b"")
        next_seq = (message.seq or next_seq) + 1
    data = b"".join(parts)
    if info.size is not None and len(data) != info.size:
        raise nats.errors.Error(f"object {name} has {len(data)} bytes, its metadata says {info.size}")
    return data, info.digest


class _Batch:
    """The replies to one batched direct get, as they arrive on the read's inbox."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.next_seq = 1
        # Set when the batch has ended; True when the direct gets may go on from `next_seq`.
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        self.done = asyncio.get_running_loop().create_future()

    async def on_reply(self, message: Msg) -> None:
        if self.done.done():
            return  # after a status that ended the read: nothing more is asked for
        headers = message.headers or {}
        status = headers.get(Header.STATUS)
        if status is not None:
            # 204: the batch is complete. 404: this replica has nothing at or after next_seq (it
            # may be behind the leader, or the chunks are gone). 503: no direct gets on the stream.
            self.done.set_result(status == _END_OF_BATCH)
            return
        sequence = headers.get(_SEQUENCE, "")
        if not sequence.isdigit():
            self.done.set_result(False)  # not a direct get's reply: the leader's API goes on
            return
        self.parts.append(message.data)
        self.next_seq = int(sequence) + 1
        if _NUM_PENDING not in headers:
            self.done.set_result(False)  # a server before 2.11 answers the first message only


async def _direct_read(
    js: JetStreamContext, stream: str, subject: str, chunks: int, parts: list[bytes], timeout_s: float
) -> int:
    """Append to `parts` the messages of `subject` that the stream's direct gets answer, up to
    `chunks` in all; return the sequence to go on from.

    Stops early, leaving the rest to the leader's message API, when the answering replica has no
    more, the stream has no direct gets, or the server ignores batches (see `_Batch`).
    Raises nats.errors.TimeoutError when a batch takes longer than `timeout_s`.
    """
    # nats-py has no batched direct get: an inbox of our own on the connection of the JetStream
    # context, with its API prefix (a JetStream domain changes it). A callback, not next_msg: that
    # starts a task per message, a fifth of the read's time for 250 chunks.
    client = js._nc
    request = f"{js._prefix}.DIRECT.GET.{stream}"
    batch = _Batch(parts)
    subscription = await client.subscribe(client.new_inbox(), cb=batch.on_reply)
    try:
        while len(parts) < chunks:
            batch.start()
            size = min(_CHUNKS_PER_FETCH, chunks - len(parts))
            body = json.dumps({"seq": batch.next_seq, "next_by_subj": subject, "batch": size})
            await client.publish(request, body.encode(), reply=subscription.subject)
            try:
                more = await asyncio.wait_for(batch.done, timeout_s)
            except TimeoutError:
                raise nats.errors.TimeoutError from None
            if not more:
                break
    finally:
        # Only this connection's interest: nothing is left on the server once it is gone.
        await subscription.unsubscribe()
    return batch.next_seq


def _check_decode_and_index(
    key: str,
    data: bytes,
    digest: str | None,
    parse: Callable[[bytes, str], ParsedFile] | None = None,
    search: SearchFactory | None = None,
) -> tuple[Snapshot, SnapshotIndex]:
    if digest is not None:
        expected = digest[len(OBJ_DIGEST_TYPE) :] if digest.upper().startswith(OBJ_DIGEST_TYPE) else digest
        actual = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        if actual.rstrip("=") != expected.rstrip("="):
            raise SnapshotUnavailable(
                f"the stored files of {key} do not match their digest; start a new job for this repository",
                snapshot=key,
            )
    try:
        snapshot = decode_snapshot(data)
    except msgspec.DecodeError as exc:
        raise SnapshotUnavailable(
            f"the stored files of {key} are unreadable ({exc}); start a new job for this repository",
            snapshot=key,
        ) from exc
    text = None if search is None else search(key, snapshot.files, snapshot.repo)
    return snapshot, SnapshotIndex(snapshot.files, snapshot.repo, parse, text)


def snapshot_gone(key: str) -> SnapshotExpired:
    """The 410 of a snapshot no longer in the Object Store (its max age)."""
    return SnapshotExpired(
        f"the stored files of {key} are gone from the Object Store (they are kept for a "
        "limited time); start a new job for this repository",
        snapshot=key,
    )


class SnapshotCache:
    """Snapshots by Object Store key, loaded once however many requests ask at the same time.

    At most `max_entries` entries and `max_bytes` stored bytes are kept (the most recently used
    entry always stays, however large). `on_loaded(loaded, still_cached)` is called once a new
    entry is in the cache (the index warm-up hooks in here); `still_cached()` says whether that
    entry is still there. The indexes parse their files with `parse` and search their text with
    what `search` makes (see `SnapshotIndex`).
    """

    def __init__(
        self,
        js: JetStreamContext,
        repos: ObjectStore,
        *,
        bucket: str = REPOS_BUCKET,
        max_entries: int,
        max_bytes: int,
        timeout_s: float = 10.0,
        deadline_s: float = 10.0,
        on_loaded: Callable[[LoadedSnapshot, Callable[[], bool]], None] | None = None,
        parse: Callable[[bytes, str], ParsedFile] | None = None,
        search: SearchFactory | None = None,
    ) -> None:
        self._parse = parse
        self._search = search
        self._js = js
        self._repos = repos
        self._bucket = bucket
        self._timeout_s = timeout_s
        self._deadline_s = deadline_s
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, LoadedSnapshot] = OrderedDict()
        self._bytes = 0
        self._loading: dict[str, asyncio.Task[LoadedSnapshot]] = {}
        self._on_loaded = on_loaded

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    async def get(self, key: str) -> LoadedSnapshot:
        """The snapshot stored under `key`, decoded and indexed.

        Raises SnapshotExpired (410) if it is gone, SnapshotUnavailable (409) if it is unreadable,
        NatsUnavailable (503) if NATS does not answer.
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
        if self._on_loaded is not None:
            self._on_loaded(loaded, lambda: self._entries.get(key) is loaded)
        return loaded

    async def _load(self, key: str) -> LoadedSnapshot:
        started = time.perf_counter()
        try:
            # A read that is moving is not cut (a large snapshot may take a while); one that NATS
            # does not answer (an election) is tried again until NATS_REQUEST_DEADLINE_S.
            data, digest = await ride_through(
                lambda: read_object(self._js, self._repos, self._bucket, key, self._timeout_s),
                deadline_s=self._deadline_s,
                what=f"reading snapshot {key}",
                cut_attempts=False,
            )
        except (ObjectNotFoundError, ObjectDeletedError) as exc:
            raise snapshot_gone(key) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise NatsUnavailable(f"could not read snapshot {key} from NATS: {exc!r}") from exc
        fetched = time.perf_counter()
        # Checking, decoding and indexing a large repository takes a while: off the event loop,
        # so other requests keep being answered meanwhile.
        snapshot, index = await asyncio.to_thread(
            _check_decode_and_index, key, data, digest, self._parse, self._search
        )
        logger.info(
            "snapshot %s loaded: %d files, %d bytes, fetch %.0f ms, check+decode+index %.0f ms",
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
