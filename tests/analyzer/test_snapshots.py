"""The snapshot cache: one load however many ask, bounded LRU, chunked reads, corrupt objects refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

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
