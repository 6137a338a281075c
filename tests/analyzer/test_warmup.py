"""A cached snapshot's files are parsed in a background process, so later lookups parse nothing."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import nats
import pytest

from analyzer import locate, warmup
from analyzer.app import create_app
from analyzer.parsing import ParseBudget, ParserPool, chunks
from analyzer.resources import SNAPSHOTS, WARMER
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from analyzer.warmup import IndexWarmer
from jobs_contract import EVENT_COMPLETED, JobEvent, JobStatus, Snapshot, event_subject
from tests.analyzer.helpers import analyze
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.servers import serving
from tests.support.waiting import until


def _module(number: int) -> str:
    """A module with a few functions, big enough to make its own chunk with a small chunk size."""
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(40))
    return f"# module {number}\n{body}class Box{number}:\n    def get(self):\n        return {number}\n"


FILES = {f"pkg/mod{number}.py": _module(number) for number in range(12)} | {
    "pkg/__init__.py": "",
    "pkg/broken.py": "def broken(:\n",
    "README.md": "not python",
}


BUDGET = ParseBudget.of(Settings())


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the lookups of apps created from now on hand to their parse workers (not the warm-up's)."""
    parsed: list[str] = []
    real = ParserPool.parse

    def counting(self: ParserPool, data: bytes, path: str) -> Any:
        parsed.append(path)
        return real(self, data, path)

    monkeypatch.setattr(ParserPool, "parse", counting)
    return parsed


def warmed(loaded: LoadedSnapshot) -> Callable[[], bool]:
    return lambda: loaded.index.unparsed() == {}


def warm_up_workers() -> list[multiprocessing.process.BaseProcess]:
    """The child processes at the warm-up's lower priority (the lookups' parse workers are not),
    but the function listing's worker, which runs at it too once it has started."""
    lowest = min(19, os.nice(0) + warmup.WORKER_NICENESS)
    return [
        c
        for c in multiprocessing.active_children()
        if c.name != "function-listing" and os.getpriority(os.PRIO_PROCESS, c.pid or 0) >= lowest
    ]


def test_chunks_keep_every_file_once_and_stay_small() -> None:
    files = {"a.py": b"1" * 10, "b.py": b"2" * 10, "big.py": b"3" * 100, "c.py": b"4" * 5}
    groups = chunks(files, 25)
    assert groups == [
        {"a.py": files["a.py"], "b.py": files["b.py"]},
        {"big.py": files["big.py"]},
        {"c.py": files["c.py"]},
    ]
    assert chunks({}, 25) == []


@pytest.mark.nats
async def test_a_loaded_snapshot_is_warmed_and_later_lookups_parse_nothing(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "CHUNK_BYTES", 2048)  # several chunks, several adopts
    parsed = _count_parses(monkeypatch)
    app = create_app(Settings(nats_url=nats_url, gateway_url=gateway.base_url))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    assert job.snapshot is not None
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        cache: SnapshotCache = app.state[SNAPSHOTS]
        assert app.state[WARMER] is not None
        assert multiprocessing.active_children() == []  # spawned lazily: nothing loaded yet
        assert (await analyze(client, job.job_id, "pkg.mod0.f1")).status_code == 200
        loaded = await cache.get(job.snapshot)
        await until(warmed(loaded))
        # The warm-up's worker runs at a lower priority than the server (the lookups' do not).
        assert len(warm_up_workers()) == 1

        asked = len(parsed)
        for name in ("pkg.mod7.f3", "pkg.mod11.Box11.get", "pkg.mod5.f39"):
            assert (await analyze(client, job.job_id, name)).status_code == 200
        # A file that does not parse was warmed too: its error comes without a parse.
        response = await analyze(client, job.job_id, "pkg.broken.broken")
        assert response.status_code == 422
        assert len(parsed) == asked
        assert gateway.requests[-1].body["messages"][0]["content"] == "def f39(x):\n    return x + 39"
    # The lifespan closed the pools: no worker left behind.
    assert multiprocessing.active_children() == []


@pytest.mark.nats
async def test_warm_index_off_parses_only_on_demand(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = _count_parses(monkeypatch)
    app = create_app(Settings(nats_url=nats_url, gateway_url=gateway.base_url, analyzer_warm_index=False))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    assert job.snapshot is not None
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        cache: SnapshotCache = app.state[SNAPSHOTS]
        assert app.state[WARMER] is None
        assert (await analyze(client, job.job_id, "pkg.mod0.f1")).status_code == 200
        loaded = await cache.get(job.snapshot)
        await asyncio.sleep(0.5)  # a warm-up, if there were one, would have started meanwhile
        assert "pkg/mod7.py" in loaded.index.unparsed()
        assert "pkg/mod7.py" not in parsed
        assert (await analyze(client, job.job_id, "pkg.mod7.f3")).status_code == 200
        assert "pkg/mod7.py" in parsed


def _loaded(files: dict[str, str]) -> LoadedSnapshot:
    content = {path: text.encode() for path, text in files.items()}
    snapshot = Snapshot(owner="octo", repo="demo", commit_sha="0" * 40, files=content)
    return LoadedSnapshot(
        key="octo/demo@" + "0" * 40,
        snapshot=snapshot,
        index=locate.SnapshotIndex(content, "octo/demo"),
        size=sum(map(len, content.values())),
    )


async def test_a_snapshot_evicted_mid_warm_up_stops_its_warm_up(caplog: pytest.LogCaptureFixture) -> None:
    loaded = _loaded(FILES)
    total = len(loaded.index.unparsed())
    asked: list[bool] = []

    def still_cached() -> bool:
        asked.append(True)
        return len(asked) <= 2  # evicted after two chunks

    warmer = IndexWarmer(BUDGET, chunk_bytes=2048)
    try:
        with caplog.at_level(logging.INFO, logger="analyzer.warmup"):
            warmer.warm(loaded, still_cached)
            await until(lambda: "left the cache: index warm-up stopped" in caplog.text)
        left = loaded.index.unparsed()
        assert 0 < len(left) < total
        assert len(asked) == 3
        assert "left the cache: index warm-up stopped" in caplog.text
        # The index still answers: the files the warm-up did not reach parse on demand.
        assert loaded.index.find(f"pkg.{sorted(left)[-1][4:-3]}.f0").source
    finally:
        await warmer.close()
    assert multiprocessing.active_children() == []


@pytest.mark.nats
async def test_eviction_during_warm_up_breaks_nothing(nats_url: str, gateway: FakeGateway) -> None:
    app = create_app(
        Settings(nats_url=nats_url, gateway_url=gateway.base_url, analyzer_snapshot_cache_entries=1)
    )
    async with job_stores(nats_url) as stores:
        first = await put_ready_job(stores, FILES)
        second = await put_ready_job(stores, FILES)
    assert first.snapshot is not None
    assert second.snapshot is not None
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        cache: SnapshotCache = app.state[SNAPSHOTS]
        assert (await analyze(client, first.job_id, "pkg.mod0.f1")).status_code == 200
        # The second snapshot pushes the first out of the one-entry cache, warming or not.
        assert (await analyze(client, second.job_id, "pkg.mod1.f1")).status_code == 200
        assert first.snapshot not in cache
        loaded = await cache.get(second.snapshot)
        await until(warmed(loaded))
        # The evicted one loads again on demand, and is warmed again.
        assert (await analyze(client, first.job_id, "pkg.mod9.f2")).status_code == 200
        reloaded = await cache.get(first.snapshot)
        await until(warmed(reloaded))
    assert multiprocessing.active_children() == []


async def test_closing_an_unused_warmer_spawns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "WARM_DELAY_S", 0.0)
    warmer = IndexWarmer(BUDGET)
    await warmer.close()
    assert multiprocessing.active_children() == []
    # Closed: later loads are not warmed (the app is shutting down).
    loaded = _loaded(FILES)
    total = len(loaded.index.unparsed())
    warmer.warm(loaded, lambda: True)
    await asyncio.sleep(0.5)
    assert len(loaded.index.unparsed()) == total
    assert multiprocessing.active_children() == []


@pytest.mark.nats
async def test_shutting_down_mid_warm_up_leaves_no_worker(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "CHUNK_BYTES", 1024)
    app = create_app(Settings(nats_url=nats_url, gateway_url=gateway.base_url))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    assert job.snapshot is not None
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        cache: SnapshotCache = app.state[SNAPSHOTS]
        assert (await analyze(client, job.job_id, "pkg.mod0.f1")).status_code == 200
        loaded = await cache.get(job.snapshot)
        await until(lambda: bool(warm_up_workers()))  # the warm-up starts after its delay
        assert loaded.index.unparsed()  # the server stops while the worker parses
    assert multiprocessing.active_children() == []


async def test_a_snapshot_evicted_before_its_warm_up_starts_spawns_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warmup, "WARM_DELAY_S", 0.05)
    loaded = _loaded(FILES)
    total = len(loaded.index.unparsed())
    warmer = IndexWarmer(BUDGET)
    try:
        warmer.warm(loaded, lambda: False)
        await asyncio.sleep(0.5)
        assert multiprocessing.active_children() == []
        assert len(loaded.index.unparsed()) == total
    finally:
        await warmer.close()


async def test_a_dead_worker_costs_the_warm_up_nothing_but_time(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "WARM_DELAY_S", 0.0)
    loaded = _loaded(FILES)
    warmer = IndexWarmer(BUDGET, chunk_bytes=1024)
    try:
        with caplog.at_level(logging.INFO, logger="analyzer.warmup"):
            warmer.warm(loaded, lambda: True)
            await until(lambda: bool(multiprocessing.active_children()))
            (worker,) = multiprocessing.active_children()
            os.kill(worker.pid or 0, signal.SIGKILL)
            await until(lambda: "index warmed" in caplog.text)
        # The files of the chunk it was parsing are parsed again, each alone, in a fresh worker:
        # none is blamed for a death it did not cause, and the warm-up goes on.
        assert loaded.index.unparsed() == {}
        assert loaded.index.find("pkg.mod3.f2").source == "def f2(x):\n    return x + 2"
        with pytest.raises(locate.UnparsableSource, match="line 1"):
            loaded.index.find("pkg.broken.broken")
        assert "warmed" in caplog.text
    finally:
        await warmer.close()
    assert multiprocessing.active_children() == []


@pytest.mark.nats
async def test_a_preloaded_snapshot_is_warmed_before_any_review(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "WARM_DELAY_S", 0.0)
    parsed = _count_parses(monkeypatch)
    app = create_app(Settings(nats_url=nats_url, gateway_url=gateway.base_url))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    assert job.snapshot is not None
    publisher = await nats.connect(nats_url)
    try:
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            cache: SnapshotCache = app.state[SNAPSHOTS]
            event = JobEvent(job_id=job.job_id, event=EVENT_COMPLETED, status=JobStatus.READY, at=time.time())
            await publisher.publish(event_subject(job.job_id, EVENT_COMPLETED), msgspec.json.encode(event))
            key = job.snapshot
            await until(lambda: key in cache)  # preloaded
            loaded = await cache.get(key)
            await until(warmed(loaded))  # every file, none asked for yet
            assert (await analyze(client, job.job_id, "pkg.mod4.f4")).status_code == 200
            assert parsed == []
    finally:
        await publisher.close()
