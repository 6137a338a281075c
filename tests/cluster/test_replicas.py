"""NATS_REPLICAS and several NATS_URL servers, against a real single server and a real cluster."""

from __future__ import annotations

import logging
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamInfo
from nats.js.errors import ServiceUnavailableError

from gateway.cache import CachedReview, NatsCache
from gateway.errors import ConfigError
from jobs_contract import (
    FETCH_STREAM,
    FETCH_SUBJECT,
    JOBS_BUCKET,
    REPOS_BUCKET,
    JetStreamSetupError,
    ensure_jetstream,
    stream_full,
)
from jobs_contract.settings import StorageSettings
from servicekit.nats_connect import connect_nats, nats_servers
from tests.support.nats_cluster import NatsCluster
from tests.support.ports import free_port
from tests.support.servers import service_process

pytestmark = pytest.mark.nats

STREAMS = [FETCH_STREAM, f"KV_{JOBS_BUCKET}", f"OBJ_{REPOS_BUCKET}"]


async def opened_cache(url: str, bucket: str, *, ttl: float, replicas: int) -> NatsCache:
    cache = NatsCache(url, bucket, ttl, replicas)
    await cache.open()
    return cache


async def stream_info(url: str, stream: str) -> StreamInfo:
    """The stream's info, read through a connection of the test's own (the cache keeps its private)."""
    connection = await nats.connect(url.split(","))
    try:
        return await connection.jetstream().stream_info(stream)
    finally:
        await connection.close()


def storage(replicas: int) -> StorageSettings:
    return StorageSettings(_env_file=None, nats_replicas=replicas)


def test_nats_url_lists_servers_separated_by_commas() -> None:
    assert nats_servers("nats://a:4222") == ["nats://a:4222"]
    assert nats_servers(" nats://a:4222, nats://b:4222 ,,nats://c:4222") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]


async def test_three_replicas_on_a_single_server_is_refused_saying_what_differs(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        with pytest.raises(JetStreamSetupError) as fresh:
            await ensure_jetstream(js, storage(3))
        assert str(fresh.value) == (
            f"NATS refused to create the stream {FETCH_STREAM} with NATS_REPLICAS=3, "
            "FETCH_QUEUE_MAX_MSGS=10000, discard=new: replicas > 1 not supported in non-clustered mode"
        )

        await ensure_jetstream(js, storage(1))
        with pytest.raises(JetStreamSetupError) as existing:
            await ensure_jetstream(js, storage(3))
        assert str(existing.value).startswith(
            f"the stream {FETCH_STREAM} exists with NATS_REPLICAS=1, FETCH_QUEUE_MAX_MSGS=10000, "
            "discard=new, this service asks for NATS_REPLICAS=3, FETCH_QUEUE_MAX_MSGS=10000, "
            "discard=new, and NATS refused: "
        )
        # Nothing was changed.
        assert [(await js.stream_info(name)).config.num_replicas for name in STREAMS] == [1, 1, 1]
    finally:
        await client.close()


def test_a_service_started_with_other_replicas_says_what_differs(nats_url: str, tmp_path: Path) -> None:
    env = {"NATS_URL": nats_url, "NATS_REPLICAS": "3", "NATS_START_WAIT_S": "5"}
    with service_process(
        "analyzer", env, tmp_path, port_variable="ANALYZER_PORT", health_path=None
    ) as service:
        code = service.process.wait(timeout=60)
    assert code != 0
    assert f"NATS refused to create the stream {FETCH_STREAM} with NATS_REPLICAS=3" in service.log()


@pytest.mark.slow
async def test_existing_buckets_are_changed_to_three_replicas_with_a_warning(
    nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    client = await nats.connect(nats_servers(nats_cluster.url))
    try:
        js = client.jetstream(timeout=10)
        stores = await ensure_jetstream(js, storage(1))
        await stores.kv.put("kept", b"across the change")
        with caplog.at_level(logging.WARNING, logger="jobs_contract.jetstream"):
            stores = await ensure_jetstream(js, storage(3))
        assert [(await js.stream_info(name)).config.num_replicas for name in STREAMS] == [3, 3, 3]
        assert [r.getMessage() for r in caplog.records] == [
            f"the stream {name} had NATS_REPLICAS=1: changed to NATS_REPLICAS=3" for name in STREAMS
        ]
        entry = await stores.kv.get("kept")
        assert entry.value == b"across the change"
    finally:
        await client.close()


@pytest.mark.slow
async def test_a_full_replicated_fetch_queue_refuses_as_a_single_server_does(
    nats_cluster: NatsCluster,
) -> None:
    # The analyzer's 503 relies on the same error code on a cluster (R3) as on one server.
    client = await nats.connect(nats_servers(nats_cluster.url))
    try:
        js = client.jetstream(timeout=10)
        await ensure_jetstream(js, StorageSettings(_env_file=None, nats_replicas=3, fetch_queue_max_msgs=1))
        await js.publish(FETCH_SUBJECT, b"{}", headers={"Nats-Msg-Id": "first"})
        with pytest.raises(ServiceUnavailableError) as full:
            await js.publish(FETCH_SUBJECT, b"{}", headers={"Nats-Msg-Id": "second"})
        assert stream_full(full.value), full.value
        assert (await js.stream_info(FETCH_STREAM)).state.messages == 1
    finally:
        await client.close()


async def test_the_first_reachable_server_of_the_list_is_used(nats_url: str) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    client = await connect_nats(
        f"{dead},{nats_url}", name="test", timeout_s=2, start_wait_s=5, log=logging.getLogger("test")
    )
    try:
        assert client.is_connected
        assert client.connected_url is not None
        connected = client.connected_url
        assert f"nats://{connected.hostname}:{connected.port}" == nats_url
    finally:
        await client.close()


async def test_the_review_cache_keeps_working_when_nats_refuses_its_replicas(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await (await opened_cache(nats_url, "reviews_r1", ttl=60, replicas=1)).close()
    with caplog.at_level(logging.WARNING, logger="gateway.cache"):
        cache = await opened_cache(nats_url, "reviews_r1", ttl=60, replicas=3)
    try:
        review = CachedReview(suggestions=["Name it."], provider="local", model="m")
        await cache.put("k", review)
        assert await cache.get("k") == review
    finally:
        await cache.close()
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "review cache bucket reviews_r1 has REVIEW_CACHE_TTL=60, NATS_REPLICAS=1, this gateway asks "
        "for REVIEW_CACHE_TTL=60, NATS_REPLICAS=3, and NATS refused the change ("
    )


@pytest.mark.slow
async def test_the_review_cache_has_three_replicas_on_a_cluster(nats_cluster: NatsCluster) -> None:
    cache = await opened_cache(nats_cluster.url, "reviews_r3", ttl=60, replicas=3)
    try:
        info = await stream_info(nats_cluster.url, "KV_reviews_r3")
        assert info.config.num_replicas == 3
    finally:
        await cache.close()


async def test_a_review_cache_nats_cannot_hold_stops_the_gateway_naming_the_setting(nats_url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        await opened_cache(nats_url, "reviews_new", ttl=60, replicas=3)
    assert refused.value.message == (
        "review cache: NATS refused the bucket reviews_new with NATS_REPLICAS=3: "
        "replicas > 1 not supported in non-clustered mode"
    )


async def test_a_review_cache_bucket_with_another_ttl_is_changed_saying_so(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await (await opened_cache(nats_url, "reviews_ttl", ttl=60, replicas=1)).close()
    with caplog.at_level(logging.WARNING, logger="gateway.cache"):
        cache = await opened_cache(nats_url, "reviews_ttl", ttl=120, replicas=1)
    try:
        info = await stream_info(nats_url, "KV_reviews_ttl")
        assert info.config.max_age == 120
    finally:
        await cache.close()
    assert [r.getMessage() for r in caplog.records] == [
        "review cache bucket reviews_ttl had REVIEW_CACHE_TTL=60, NATS_REPLICAS=1: "
        "changed to REVIEW_CACHE_TTL=120, NATS_REPLICAS=1"
    ]
