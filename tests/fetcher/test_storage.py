"""Storage is bounded (issue #11, item 7): the `jobs` KV bucket and the `repos` Object Store have a
max age and max bytes from the contract's settings, applied at every start, and what they drop
reads back as a clear "gone". The fetch queue has a max number of requests (issue #20) and refuses
new ones past it, never dropping a queued one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import ObjectNotFoundError, ServiceUnavailableError
from nats.js.object_store import ObjectStore

from jobs_contract import (
    FETCH_DUPLICATE_WINDOW_S,
    FETCH_STREAM,
    FETCH_SUBJECT,
    JOBS_BUCKET,
    REPOS_BUCKET,
    JobStatus,
    decode_snapshot,
    ensure_jetstream,
    snapshot_key,
    stream_full,
)
from jobs_contract.settings import StorageSettings
from tests.fetcher.helpers import Analyzer, fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server

pytestmark = pytest.mark.nats


async def stored_files(repos: ObjectStore, key: str) -> dict[str, bytes]:
    """The files of the stored snapshot `key`; ObjectNotFoundError once it is gone."""
    return decode_snapshot((await repos.get(key)).data or b"").files


def storage(**values: float) -> StorageSettings:
    return StorageSettings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """An empty nats-server (not the fetcher tests' provisioned one): these tests are about the
    provisioning itself, the analyzer's start."""
    with running_nats_server(tmp_path / "jetstream") as url:
        yield url


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.drain()


async def limits(js: JetStreamContext, stream: str) -> tuple[float | None, int | None]:
    config = (await js.stream_info(stream)).config
    return config.max_age, config.max_bytes


async def test_both_buckets_get_a_max_age_and_max_bytes(js: JetStreamContext) -> None:
    await ensure_jetstream(js, storage())
    defaults = StorageSettings(_env_file=None)
    assert await limits(js, f"KV_{JOBS_BUCKET}") == (defaults.jobs_max_age_s, defaults.jobs_max_bytes)
    assert await limits(js, f"OBJ_{REPOS_BUCKET}") == (defaults.repos_max_age_s, defaults.repos_max_bytes)


async def test_buckets_made_without_limits_get_them_at_the_next_start(js: JetStreamContext) -> None:
    # As an earlier release made them: no max age, no max bytes.
    await js.create_key_value(bucket=JOBS_BUCKET, history=1, storage=StorageType.FILE)
    await js.create_object_store(bucket=REPOS_BUCKET, storage=StorageType.FILE)

    wanted = storage(jobs_max_age_s=60, jobs_max_bytes=1 << 20, repos_max_age_s=90, repos_max_bytes=1 << 24)
    await ensure_jetstream(js, wanted)
    stores = await ensure_jetstream(js, wanted)  # a start that finds them as wanted changes nothing

    assert await limits(js, f"KV_{JOBS_BUCKET}") == (60, 1 << 20)
    assert await limits(js, f"OBJ_{REPOS_BUCKET}") == (90, 1 << 24)
    await stores.kv.put("still-works", b"{}")
    assert (await stores.kv.get("still-works")).value == b"{}"


async def test_the_fetch_queue_is_bounded_and_refuses_rather_than_drops(js: JetStreamContext) -> None:
    await ensure_jetstream(js, storage(fetch_queue_max_msgs=2))
    config = (await js.stream_info(FETCH_STREAM)).config
    assert (config.max_msgs, config.discard) == (2, "new")
    for n in range(2):
        await js.publish(FETCH_SUBJECT, b"{}", headers={"Nats-Msg-Id": f"job-{n}"})
    with pytest.raises(ServiceUnavailableError) as full:
        await js.publish(FETCH_SUBJECT, b"{}", headers={"Nats-Msg-Id": "job-2"})
    assert stream_full(full.value)
    assert full.value.description == "maximum messages exceeded"
    state = (await js.stream_info(FETCH_STREAM)).state
    assert (state.first_seq, state.messages) == (1, 2)  # the first two stay queued


async def test_a_queue_made_without_a_bound_gets_it_at_the_next_start_keeping_its_requests(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    # As an earlier release made it: no max messages, discard "old" (NATS's default).
    await js.add_stream(
        StreamConfig(
            name=FETCH_STREAM,
            subjects=[FETCH_SUBJECT],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=FETCH_DUPLICATE_WINDOW_S,
        )
    )
    for n in range(3):
        await js.publish(FETCH_SUBJECT, b"{}", headers={"Nats-Msg-Id": f"job-{n}"})

    with caplog.at_level(logging.WARNING, logger="jobs_contract.jetstream"):
        await ensure_jetstream(js, storage(fetch_queue_max_msgs=2))
    assert [r.getMessage() for r in caplog.records] == [
        f"the stream {FETCH_STREAM} had FETCH_QUEUE_MAX_MSGS=-1, discard=old: "
        "changed to FETCH_QUEUE_MAX_MSGS=2, discard=new"
    ]
    # The three requests queued before stay (a lower bound refuses new ones, drops none) ...
    assert (await js.stream_info(FETCH_STREAM)).state.messages == 3
    with pytest.raises(ServiceUnavailableError) as full:
        await js.publish(FETCH_SUBJECT, b"{}", headers={"Nats-Msg-Id": "job-3"})
    assert stream_full(full.value)
    # ... and a start that finds the queue as wanted changes nothing.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jobs_contract.jetstream"):
        await ensure_jetstream(js, storage(fetch_queue_max_msgs=2))
    assert caplog.records == []


async def test_a_full_object_store_fails_the_job_naming_the_setting(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    fake_github.add_repo("octo", "first", {"a.py": "a = '" + "x" * 150_000 + "'\n"})
    fake_github.add_repo("octo", "second", {"b.py": "b = '" + "y" * 150_000 + "'\n"})
    settings = fetcher_settings(nats_url, fake_github.api_url, repos_max_bytes=200_000)
    await ensure_jetstream(jobs.nc.jetstream(), settings)  # the analyzer, with the same setting

    async with running_fetcher(settings):
        first = await jobs.wait(await jobs.submit("octo", "first"))
        second = await jobs.wait(await jobs.submit("octo", "second"))

    assert first.status is JobStatus.READY, first.error
    assert second.status is JobStatus.FAILED
    assert "REPOS_MAX_BYTES=200000 is reached" in (second.error or "")


async def test_an_expired_snapshot_reads_as_gone(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    fake_github.add_repo("octo", "brief", {"a.py": "a = 1\n"})
    settings = fetcher_settings(nats_url, fake_github.api_url, repos_max_age_s=1.0)
    await ensure_jetstream(jobs.nc.jetstream(), settings)  # the analyzer, with the same setting

    async with running_fetcher(settings):
        record = await jobs.wait(await jobs.submit("octo", "brief"))
    assert record.status is JobStatus.READY, record.error
    key = record.snapshot or ""
    assert await stored_files(jobs.stores.repos, key) == {"a.py": b"a = 1\n"}

    await asyncio.sleep(2.5)  # JetStream drops messages past max age about once a second

    with pytest.raises(ObjectNotFoundError):
        await stored_files(jobs.stores.repos, key)
    with pytest.raises(ObjectNotFoundError):
        await stored_files(jobs.stores.repos, snapshot_key("octo", "never", "0" * 40))


async def test_a_snapshot_past_half_its_age_is_stored_again_not_reused(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    # A commit stored once serves later jobs; one close to expiry would leave a new job's files
    # gone soon after it is ready, so it is downloaded and stored afresh instead.
    fake_github.add_repo("octo", "again", {"a.py": "a = 1\n"})
    settings = fetcher_settings(nats_url, fake_github.api_url, repos_max_age_s=3.0)

    async with running_fetcher(settings):
        first = await jobs.wait(await jobs.submit("octo", "again"))
        stored_at = (await jobs.stores.repos.get_info(first.snapshot or "")).mtime
        reused = await jobs.wait(await jobs.submit("octo", "again"))
        assert (await jobs.stores.repos.get_info(reused.snapshot or "")).mtime == stored_at
        downloads_before = len(fake_github.requests_to("/codeload/octo/again/"))
        await asyncio.sleep(1.8)  # past half of REPOS_MAX_AGE_S
        renewed = await jobs.wait(await jobs.submit("octo", "again"))
        info = await jobs.stores.repos.get_info(renewed.snapshot or "")

    assert [first.status, reused.status, renewed.status] == [JobStatus.READY] * 3
    assert first.snapshot == reused.snapshot == renewed.snapshot
    # Both later jobs downloaded (the sha is only known from the archive), but only the last stored.
    assert len(fake_github.requests_to("/codeload/octo/again/")) == downloads_before + 1
    assert info.mtime != stored_at
    assert await stored_files(jobs.stores.repos, renewed.snapshot or "") == {"a.py": b"a = 1\n"}
