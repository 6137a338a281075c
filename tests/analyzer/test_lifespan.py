"""The analyzer's lifespan closes everything it opened, on a failed start as on a stop, and a failed
start reports what failed (here: a NATS whose JetStream never answers), not an error of its own."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from analyzer.app import create_app
from analyzer.listing_worker import ListingWorker
from analyzer.parsing import WorkerPool
from analyzer.review import GatewayClient
from analyzer.settings import Settings
from analyzer.typecheck import TypeChecks
from analyzer.warmup import IndexWarmer
from jobs_contract.jetstream import ScanLimits, ensure_scan_jetstream
from servicekit.nats_connect import NatsUnreachable
from tests.analyzer.helpers import analyze
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.lifespan import failed_start, nats_connections, spy_on
from tests.support.nats import running_nats_server
from tests.support.ports import free_port
from tests.support.servers import serving
from tests.support.waiting import until

pytestmark = [pytest.mark.nats]

# What the lifespan opens that holds a connection, a process or a task: every instance made while
# a test runs is kept, to check each one's own word that it is closed.
OPENED = (NatsClient, GatewayClient, WorkerPool, ListingWorker, TypeChecks, IndexWarmer)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[type, list[Any]]:
    """The instances of OPENED created from now on."""
    return spy_on(monkeypatch, OPENED)


def descendants() -> dict[int, tuple[int, str]]:
    """This process's live descendants, by pid: their parent's pid and command line (from /proc)."""
    processes: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its end.
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            processes[int(entry.name)] = (int(ppid), cmdline)
    found: dict[int, tuple[int, str]] = {}
    level = {os.getpid()}
    while level:
        level = {pid for pid, (ppid, _) in processes.items() if ppid in level and pid not in found}
        found.update((pid, processes[pid]) for pid in level)
    return found


# multiprocessing's own helpers, children of this process for its whole life once a worker
# started: the resource tracker, and the fork server the workers are forked from (they keep its
# command line).
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def workers() -> set[int]:
    """The pids of this process's worker processes: its descendants but multiprocessing's helpers."""
    return {
        pid
        for pid, (ppid, cmdline) in descendants().items()
        if not (ppid == os.getpid() and any(helper in cmdline for helper in HELPERS))
    }


def assert_all_closed(made: dict[type, list[Any]]) -> None:
    for nc in made[NatsClient]:
        assert nc.is_closed
    for client in made[GatewayClient]:
        assert client.closed
    for pool in made[WorkerPool]:  # the parse workers, the search workers, the warm-up's
        assert pool._closed
    for kind in (ListingWorker, TypeChecks, IndexWarmer):
        for opened in made[kind]:
            assert opened._closed, kind


async def test_jetstream_never_ready_is_the_error_and_everything_opened_is_closed(
    tmp_path: Path, made: dict[type, list[Any]]
) -> None:
    monitor = free_port()
    before = workers()
    with running_nats_server(tmp_path / "plain", jetstream=False, monitor_port=monitor) as url:
        # Everything on, so that everything is opened before JetStream is asked.
        settings = Settings(
            nats_url=url,
            nats_start_wait_s=1,
            analyzer_warm_index=True,
            analyzer_review_context=True,
            analyzer_typecheck_enabled=True,
            analyzer_preload=True,
        )
        app = create_app(settings)
        error = await failed_start(app.lifespan())
        connections = nats_connections(monitor)
    # What stopped the start is what is reported: nothing raised while closing hides it (it was once
    # an UnboundLocalError of the lifespan's own, and the workers and connections were left open).
    assert isinstance(error, NatsUnreachable), repr(error)
    assert str(error).startswith(f"JetStream at {url} was not ready within 1 s (NATS_START_WAIT_S)")
    assert connections == 0
    assert len(made[NatsClient]) == 1
    assert len(made[GatewayClient]) == 1
    assert len(made[WorkerPool]) >= 3  # parse, search (a lane each), warm-up
    assert len(made[TypeChecks]) == 1
    assert len(made[IndexWarmer]) == 1
    assert_all_closed(made)
    assert workers() == before


async def test_a_stop_after_serving_ends_every_worker_and_connection(
    tmp_path: Path, gateway: FakeGateway, made: dict[type, list[Any]]
) -> None:
    monitor = free_port()
    before = workers()
    gateway.suggestions = ["Handle an empty list."]
    with running_nats_server(tmp_path / "jetstream", monitor_port=monitor) as url:
        async with job_stores(url) as stores:
            job = await put_ready_job(stores, {"stats.py": "def mean(xs):\n    return sum(xs) / len(xs)\n"})
        app = create_app(Settings(nats_url=url, gateway_url=gateway.base_url))
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
            response = await analyze(client, job.job_id, "stats.mean")
            assert response.status_code == 200, response.text
            listed = await client.get(f"/analyze/jobs/{job.job_id}/functions")
            assert listed.status_code == 200, listed.text
            # The parse workers, the listing's, the warm-up's and the search workers (spawned a
            # moment after the first load) are all running now.
            await until(lambda: len(workers() - before) >= 4, timeout=60)
            assert nats_connections(monitor) == 1
        await until(lambda: nats_connections(monitor) == 0, timeout=10)
    assert_all_closed(made)
    assert workers() == before


async def test_the_scans_streams_are_waited_for_as_the_jobs_streams_are(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A cluster electing its leaders, or a busy meta leader, does not answer the scans' streams
    # either: the start waits for it (once the analyzer of a node loss test exited instead).
    real = ensure_scan_jetstream
    asked: list[ScanLimits] = []

    async def not_ready_at_first(js: JetStreamContext, limits: ScanLimits) -> KeyValue:
        asked.append(limits)
        if len(asked) == 1:
            raise nats.errors.TimeoutError
        return await real(js, limits)

    monkeypatch.setattr("analyzer.scan.service.ensure_scan_jetstream", not_ready_at_first)
    with caplog.at_level(logging.WARNING, logger="analyzer.scan.service"):
        async with serving(create_app(Settings(nats_url=nats_url))) as base, httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/health", timeout=10)).status_code == 200
    assert len(asked) == 2
    assert f"JetStream at {nats_url} not ready (attempt 1)" in caplog.text


async def test_scans_streams_never_ready_are_the_error_and_everything_opened_is_closed(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, made: dict[type, list[Any]]
) -> None:
    async def never_ready(js: JetStreamContext, limits: ScanLimits) -> KeyValue:
        raise nats.errors.TimeoutError

    monkeypatch.setattr("analyzer.scan.service.ensure_scan_jetstream", never_ready)
    error = await failed_start(create_app(Settings(nats_url=nats_url, nats_start_wait_s=1)).lifespan())
    assert isinstance(error, NatsUnreachable), repr(error)
    assert str(error).startswith(f"JetStream at {nats_url} was not ready within 1 s (NATS_START_WAIT_S)")
    assert len(made[NatsClient]) == 1
    assert_all_closed(made)
