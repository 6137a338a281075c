"""The snapshot cache: one load however many ask, bounded LRU, chunked reads that hold no consumer, corrupt
objects refused."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_META_PRE_TEMPLATE, OBJ_STREAM_TEMPLATE

from analyzer import snapshots
from analyzer.errors import SnapshotExpired, SnapshotUnavailable
from analyzer.snapshots import SnapshotCache, read_object
from jobs_contract import REPOS_BUCKET, JobStores, Snapshot, encode_snapshot, ensure_jetstream, snapshot_key

pytestmark = pytest.mark.nats


@pytest.fixture
async def nats_side(nats_url: str) -> AsyncIterator[tuple[JetStreamContext, JobStores]]:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        yield js, await ensure_jetstream(js)
    finally:
        await client.close()


async def store(stores: JobStores, repo: str, files: dict[str, bytes]) -> str:
    key = snapshot_key("octo", repo, "a" * 40)
    await stores.repos.put(
        key, encode_snapshot(Snapshot(owner="octo", repo=repo, commit_sha="a" * 40, files=files))
    )
    return key


async def test_concurrent_requests_share_one_load(
    nats_side: tuple[JetStreamContext, JobStores], loads: list[str]
) -> None:
    js, stores = nats_side
    key = await store(stores, "one", {"m.py": b"def f():\n    pass\n"})
    cache = SnapshotCache(js, stores.repos, max_entries=4, max_bytes=10**9)
    results = await asyncio.gather(*(cache.get(key) for _ in range(20)))
    assert loads == [key]
    assert all(r is results[0] for r in results)
    assert results[0].index.find("m.f").source == "def f():\n    pass"
    assert (await cache.get(key)) is results[0]
    assert loads == [key]


async def test_least_recently_used_goes_first(
    nats_side: tuple[JetStreamContext, JobStores], loads: list[str]
) -> None:
    js, stores = nats_side
    a, b, c = [await store(stores, name, {"m.py": b"x = 1\n"}) for name in ("a", "b", "c")]
    cache = SnapshotCache(js, stores.repos, max_entries=2, max_bytes=10**9)
    await cache.get(a)
    await cache.get(b)
    await cache.get(a)  # a is now the most recent
    await cache.get(c)  # evicts b
    assert (a in cache, b in cache, c in cache) == (True, False, True)
    await cache.get(b)
    assert loads == [a, b, c, b]
    assert len(cache) == 2


async def test_the_byte_bound_keeps_at_least_the_newest(
    nats_side: tuple[JetStreamContext, JobStores],
) -> None:
    js, stores = nats_side
    small = await store(stores, "small", {"m.py": b"x = 1\n"})
    large = await store(stores, "large", {"m.py": b"x = 1\n" * 1000})
    cache = SnapshotCache(js, stores.repos, max_entries=8, max_bytes=100)
    await cache.get(small)
    await cache.get(large)
    assert (small in cache, large in cache) == (False, True)


async def test_a_missing_snapshot_is_not_cached(
    nats_side: tuple[JetStreamContext, JobStores], loads: list[str]
) -> None:
    js, stores = nats_side
    cache = SnapshotCache(js, stores.repos, max_entries=2, max_bytes=10**9)
    key = snapshot_key("octo", "later", "b" * 40)
    with pytest.raises(SnapshotExpired, match="gone from the Object Store"):
        await cache.get(key)
    await stores.repos.put(
        key, encode_snapshot(Snapshot(owner="octo", repo="later", commit_sha="b" * 40, files={"m.py": b""}))
    )
    assert len((await cache.get(key)).snapshot.files) == 1
    assert loads == [key, key]


async def test_large_objects_are_read_whole_across_fetches(
    nats_side: tuple[JetStreamContext, JobStores],
) -> None:
    js, stores = nats_side
    data = os.urandom(9 * 1024 * 1024 + 7)  # 73 chunks of 128 KiB: two fetches
    await stores.repos.put("blob", data)
    read, digest = await read_object(js, stores.repos, REPOS_BUCKET, "blob", 10.0)
    assert read == data
    assert digest is not None
    assert digest.startswith("SHA-256=")
    empty = await stores.repos.put("empty", b"")
    assert empty.size == 0
    assert await read_object(js, stores.repos, REPOS_BUCKET, "empty", 10.0) == (b"", None)


def test_bytes_that_do_not_match_their_digest_are_refused() -> None:
    data = encode_snapshot(Snapshot(owner="o", repo="r", commit_sha="c", files={}))
    with pytest.raises(SnapshotUnavailable, match="do not match their digest"):
        snapshots._check_decode_and_index("o/r@c", data, "SHA-256=" + "A" * 43 + "=")


def repos_stream() -> str:
    return OBJ_STREAM_TEMPLATE.format(bucket=REPOS_BUCKET)


@pytest.mark.slow
async def test_thousands_of_reads_leave_no_consumer_behind(
    nats_side: tuple[JetStreamContext, JobStores],
) -> None:
    # Each read used to leave a pull consumer on the stream for 30 s, and nats-server allows
    # 1,000 a stream: from the 1,001st read on, reads failed with "maximum consumers limit reached".
    js, stores = nats_side
    keys = [await store(stores, f"r{number}", {"m.py": b"x = %d\n" % number}) for number in range(3000)]
    cache = SnapshotCache(js, stores.repos, max_entries=4, max_bytes=10**9)
    counts = []
    for number, key in enumerate(keys):
        loaded = await cache.get(key)  # raises NatsUnavailable if a read fails
        assert loaded.snapshot.files == {"m.py": b"x = %d\n" % number}
        if number % 500 == 499:
            counts.append((await js.stream_info(repos_stream())).state.consumer_count)
    assert counts == [0] * 6


async def test_a_read_holds_no_consumer_while_it_runs(nats_side: tuple[JetStreamContext, JobStores]) -> None:
    js, stores = nats_side
    data = os.urandom(24 * 1024 * 1024)
    await stores.repos.put("blob", data)
    reading = asyncio.create_task(read_object(js, stores.repos, REPOS_BUCKET, "blob", 10.0))
    counts = []
    while not reading.done():
        counts.append((await js.stream_info(repos_stream())).state.consumer_count)
    assert (await reading)[0] == data
    assert set(counts) == {0}
    # A read cancelled halfway leaves nothing either: on the server, nor on this connection.
    client = js._nc
    subscriptions = len(client._subs)
    reading = asyncio.create_task(read_object(js, stores.repos, REPOS_BUCKET, "blob", 10.0))
    while len(client._subs) == subscriptions:  # until the chunks are coming
        await asyncio.sleep(0.001)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await asyncio.sleep(0.05)
    assert len(client._subs) == subscriptions
    assert (await js.stream_info(repos_stream())).state.consumer_count == 0
    assert (await read_object(js, stores.repos, REPOS_BUCKET, "blob", 10.0))[0] == data


async def test_a_stream_without_direct_gets_is_read_through_its_leader(
    nats_side: tuple[JetStreamContext, JobStores],
) -> None:
    js, stores = nats_side
    data = os.urandom(3 * 128 * 1024 + 5)
    await stores.repos.put("blob", data)
    config = (await js.stream_info(repos_stream())).config
    config.allow_direct = False
    await js.update_stream(config)
    assert (await read_object(js, stores.repos, REPOS_BUCKET, "blob", 10.0))[0] == data


async def test_a_server_without_batched_direct_gets_is_read_whole(
    nats_side: tuple[JetStreamContext, JobStores],
) -> None:
    # nats-server before 2.11 answers a batched direct get with its first message alone, without
    # Nats-Num-Pending. Played here by a responder of our own on a stream without direct gets.
    js, stores = nats_side
    data = os.urandom(5 * 128 * 1024 + 5)
    await stores.repos.put("blob", data)
    config = (await js.stream_info(repos_stream())).config
    config.allow_direct = False
    await js.update_stream(config)
    asked: list[dict[str, object]] = []

    async def answer(message: Msg) -> None:
        request = json.loads(message.data)
        asked.append(request)
        found = await js.get_msg(
            repos_stream(), seq=request["seq"], subject=request["next_by_subj"], next=True
        )
        headers = {
            "Nats-Stream": repos_stream(),
            "Nats-Subject": found.subject or "",
            "Nats-Sequence": str(found.seq),
        }
        await js._nc.publish(message.reply, found.data or b"", headers=headers)

    responder = await js._nc.subscribe(f"$JS.API.DIRECT.GET.{repos_stream()}", cb=answer)
    try:
        assert (await read_object(js, stores.repos, REPOS_BUCKET, "blob", 10.0))[0] == data
    finally:
        await responder.unsubscribe()
    assert len(asked) == 1  # the leader's message API read the other five chunks


async def test_an_object_that_lost_a_chunk_is_gone(nats_side: tuple[JetStreamContext, JobStores]) -> None:
    js, stores = nats_side
    key = await store(stores, "torn", {"m.py": os.urandom(3 * 128 * 1024)})
    info = await stores.repos.get_info(key)
    chunks = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=REPOS_BUCKET, obj=info.nuid)
    first = await js.get_msg(repos_stream(), seq=1, subject=chunks, next=True)
    assert first.seq is not None
    await js.delete_msg(repos_stream(), first.seq + 1)
    cache = SnapshotCache(js, stores.repos, max_entries=2, max_bytes=10**9)
    with pytest.raises(SnapshotExpired, match="gone from the Object Store"):
        await cache.get(key)


async def test_a_link_is_read_from_the_object_it_names(nats_side: tuple[JetStreamContext, JobStores]) -> None:
    # nats-py cannot make links; other clients can. The metadata as the Object Store spec lays it out.
    js, stores = nats_side
    data = os.urandom(200 * 1024)
    await stores.repos.put("target", data)
    meta = {
        "name": "link",
        "bucket": REPOS_BUCKET,
        "nuid": "LINKNUID",
        "size": 0,
        "chunks": 0,
        "options": {"link": {"bucket": REPOS_BUCKET, "name": "target"}},
    }
    subject = OBJ_META_PRE_TEMPLATE.format(
        bucket=REPOS_BUCKET, obj=base64.urlsafe_b64encode(b"link").decode()
    )
    await js.publish(subject, json.dumps(meta).encode(), headers={"Nats-Rollup": "sub"})
    read, digest = await read_object(js, stores.repos, REPOS_BUCKET, "link", 10.0)
    assert read == data
    assert digest == (await stores.repos.get_info("target")).digest
