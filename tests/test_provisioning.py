"""One service provisions the jobs' streams and buckets (the analyzer); the fetcher only checks.

The fetcher waits NATS_START_WAIT_S for what it needs, then says what is missing and who makes
it; a stream with another structure than codereview's is refused by both, never changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig

from jobs_contract import (
    FETCH_STREAM,
    FETCH_SUBJECT,
    JetStreamSetupError,
    NotProvisioned,
    await_jetstream,
    ensure_jetstream,
)
from jobs_contract.settings import StorageSettings
from servicekit.nats_connect import when_jetstream_ready
from tests.support.fake_github import FakeGitHub
from tests.support.servers import service_process

pytestmark = pytest.mark.nats

LOG = logging.getLogger("tests.provisioning")


def storage(**values: float) -> StorageSettings:
    return StorageSettings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(nats_url)
    try:
        yield client.jetstream(timeout=2)
    finally:
        await client.close()


async def test_the_checker_names_what_is_missing_and_who_creates_it(js: JetStreamContext) -> None:
    with pytest.raises(NotProvisioned) as missing:
        await await_jetstream(js, storage())
    assert str(missing.value) == (
        f"the stream {FETCH_STREAM} does not exist: the analyzer creates it at its start "
        "(is an analyzer running against this NATS, with the same NATS_URL?)"
    )


async def test_the_checker_waits_for_the_owner_within_the_start_wait(
    js: JetStreamContext, nats_url: str
) -> None:
    checking = asyncio.create_task(
        when_jetstream_ready(
            lambda: await_jetstream(js, storage()),
            url=nats_url,
            start_wait_s=20,
            log=LOG,
            waiting_for=(NotProvisioned,),
        )
    )
    await asyncio.sleep(1.0)
    assert not checking.done()
    await ensure_jetstream(js, storage())  # the analyzer starts
    stores = await asyncio.wait_for(checking, 10)
    assert stores.kv.__class__.__name__ == "KeyValue"


async def test_the_checker_gives_up_with_the_missing_stream_after_the_start_wait(
    js: JetStreamContext, nats_url: str
) -> None:
    with pytest.raises(NotProvisioned, match=f"the stream {FETCH_STREAM} does not exist: the analyzer"):
        await when_jetstream_ready(
            lambda: await_jetstream(js, storage()),
            url=nats_url,
            start_wait_s=0.5,
            log=LOG,
            waiting_for=(NotProvisioned,),
        )


async def test_a_stream_of_another_structure_is_refused_by_owner_and_checker(js: JetStreamContext) -> None:
    # A fetch "queue" someone made as an ordinary stream: updating it would not make it a work queue.
    await js.add_stream(
        StreamConfig(name=FETCH_STREAM, subjects=[FETCH_SUBJECT], retention=RetentionPolicy.LIMITS)
    )
    for start in (ensure_jetstream, await_jetstream):
        with pytest.raises(JetStreamSetupError) as refused:
            await start(js, storage())
        assert str(refused.value).startswith(
            f"the stream {FETCH_STREAM} exists with retention=limits, but codereview needs "
            "retention=workqueue: it was made by something else."
        )
        assert f"nats stream rm {FETCH_STREAM}" in str(refused.value)
    assert (await js.stream_info(FETCH_STREAM)).config.retention == RetentionPolicy.LIMITS  # untouched


async def test_the_checker_only_warns_about_limits_and_changes_nothing(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_jetstream(js, storage(jobs_max_age_s=3600))
    with caplog.at_level(logging.WARNING, logger="jobs_contract.jetstream"):
        await await_jetstream(js, storage(jobs_max_age_s=7200))
    assert (
        "the stream KV_jobs has JOBS_MAX_AGE_S=3600 (the analyzer keeps it so); this service's "
        "environment says JOBS_MAX_AGE_S=7200: set the same values for every service"
    ) in caplog.text
    assert (await js.stream_info("KV_jobs")).config.max_age == 3600


def test_a_fetcher_started_alone_says_what_is_missing_and_exits(
    nats_url: str, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_url, "NATS_START_WAIT_S": "2", "GITHUB_API_URL": fake_github.api_url}
    with service_process(
        "fetcher", env, tmp_path, port_variable="FETCHER_HEALTH_PORT", health_path=None
    ) as service:
        code = service.process.wait(timeout=60)
        log = service.log()
    assert code != 0
    assert "waiting for JetStream at" in log
    assert f"the stream {FETCH_STREAM} does not exist: the analyzer creates it at its start" in log
