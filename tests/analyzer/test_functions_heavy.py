"""The function listing of a file with 75k definitions: bounded pages, other jobs' reviews unhurt,
and a stop that does not wait for it (issue #20). Real nats-server; snapshots put straight into
NATS as in test_function_api.py.

Before the listing had a worker of its own, one page (limit 1) of such a file took 28-51 s of a
thread of the event loop's default executor, where lookups run too: a few of them at once kept a
review of another job waiting for minutes, and SIGTERM waited for them past its bound.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from analyzer.listing import Listing, Query
from analyzer.listing_worker import ListingWorker
from analyzer.locate import SnapshotIndex
from analyzer.parsing import ParseBudget
from tests.analyzer.helpers import analyze
from tests.analyzer.stores import job_stores, put_ready_job
from tests.analyzer.test_function_api import analyzer, settings
from tests.support.fake_gateway import FakeGateway
from tests.support.servers import service_process

pytestmark = pytest.mark.nats

DEFS = 75_000
# 1.7 MB: under ANALYZER_PARSE_MAX_BYTES, and about 1.5 s to parse here.
HEAVY = {
    "pkg/__init__.py": "",
    "pkg/big.py": "".join(f"def f{i}():\n    pass\n" for i in range(DEFS)),
}
# Three such files: the worker parses for seconds, whatever page it is on.
HEAVIER = {"pkg/__init__.py": "", **{f"pkg/big{n}.py": HEAVY["pkg/big.py"] for n in range(3)}}
SMALL = {"calc.py": "def add(a, b):\n    return a + b\n"}
BUDGET = ParseBudget(max_bytes=10_000_000, cpu_s=10, memory_bytes=2_000_000_000)
# How many threads asyncio's default executor has: the lookups' threads, which the listing used to take.
DEFAULT_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
SHUTDOWN_TIMEOUT_S = 20
# Only a bound against a hang (the assertions are about order): the listing used to take minutes.
GUARD_S = 240


async def page(client: httpx.AsyncClient, job_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/analyze/jobs/{job_id}/functions", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def walk(client: httpx.AsyncClient, job_id: str, **params: Any) -> tuple[list[str], int]:
    """The full names of every page, following the cursors; and how many pages that took."""
    names: list[str] = []
    pages, cursor = 0, ""
    while True:
        answer = await page(client, job_id, **params, cursor=cursor)
        names += [entry["full_name"] for entry in answer["functions"]]
        pages += 1
        if answer["next_cursor"] is None:
            return names, pages
        cursor = answer["next_cursor"]


def test_a_page_checks_its_budget_inside_a_file_not_only_between_files() -> None:
    listing = Listing(SnapshotIndex({p: t.encode() for p, t in HEAVY.items()}, "octo/heavy"))
    listing.page(Query.checked("", "", 1, ""), deadline=time.monotonic() + 60)  # parsed, as a worker keeps it
    # From the heavy file (pkg/__init__.py, with no names, comes first), a budget spent at once:
    # one name, and the cursor of the next one in the same file.
    found, cursor = listing.page(Query.checked("", "", 1000, "1:0"), deadline=0.0)
    assert [entry.full_name for entry in found] == ["pkg.big.f0"]
    assert cursor == "1:1"
    found, cursor = listing.page(Query.checked("", "", 2, cursor), deadline=time.monotonic() + 60)
    assert [(entry.name, entry.line) for entry in found] == [("big.f1", 3), ("big.f2", 5)]
    assert cursor == "1:3"


def test_a_snapshot_over_the_bound_on_names_is_refused_past_it() -> None:
    from analyzer.listing import TooManyNamesError

    files = {"a.py": b"def one():\n    pass\n", "b.py": b"def two():\n    pass\ndef three():\n    pass\n"}
    listing = Listing(SnapshotIndex(files, "octo/few"), max_names=2)
    found, cursor = listing.page(Query.checked("", "", 1, ""), deadline=time.monotonic() + 60)
    assert [entry.full_name for entry in found] == ["a.one"]
    with pytest.raises(TooManyNamesError) as raised:
        listing.page(Query.checked("", "", 10, cursor or ""), deadline=time.monotonic() + 60)
    assert (raised.value.path, raised.value.names, raised.value.max_names) == ("b.py", 3, 2)


async def test_more_names_than_the_setting_allows_answer_422_naming_it(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"a.py": "".join(f"def f{i}():\n    pass\n" for i in range(50))})
    values = {"analyzer_functions_max_names": 10, "analyzer_functions_page_s": 30.0}
    async with analyzer(settings(nats_url, gateway, **values)) as client:
        response = await client.get(f"/analyze/jobs/{job.job_id}/functions")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "ANALYZER_FUNCTIONS_MAX_NAMES" in detail
    assert "a.py takes them to 50" in detail


@pytest.mark.alone
async def test_the_first_page_of_a_75k_definition_file_answers_within_the_page_budget(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, HEAVY, repo="heavy")
    budget_s = 0.5
    values = {"analyzer_functions_page_s": budget_s, "analyzer_preload": False}
    async with analyzer(settings(nats_url, gateway, **values)) as client:
        await client.get(f"/analyze/jobs/{job.job_id}")
        started = time.monotonic()
        first = await page(client, job.job_id, limit=1)
        answered_in = time.monotonic() - started
        # Not finished in time (the file is still being parsed): an empty page and a cursor to ask again.
        assert len(first["functions"]) <= 1
        assert first["next_cursor"] is not None
        # The cursors lead to the names: the work went on in the worker meanwhile.
        names: list[str] = []
        cursor = first["next_cursor"]
        names += [entry["full_name"] for entry in first["functions"]]
        while not names:
            answer = await page(client, job.job_id, limit=1, cursor=cursor)
            names += [entry["full_name"] for entry in answer["functions"]]
            cursor = answer["next_cursor"]
    assert names == ["pkg.big.f0"]
    # The snapshot's load is in it too; a generous bound, far below the 28-51 s this took before.
    assert answered_in < budget_s + 5.0, answered_in


@pytest.mark.alone
async def test_a_review_of_another_job_is_answered_while_heavy_listings_run(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        heavy = await put_ready_job(stores, HEAVIER, repo="heavy")
        small = await put_ready_job(stores, SMALL)
    # Each page may take long (so that the listings are still running while the review is made),
    # and more of them at once than the default executor has threads.
    values = {"analyzer_functions_page_s": 60.0, "analyzer_typecheck_enabled": False}
    async with analyzer(settings(nats_url, gateway, **values)) as client:
        listings = [
            asyncio.create_task(walk(client, heavy.job_id, contains="no-such-name", limit=1000))
            for _ in range(DEFAULT_EXECUTOR_THREADS + 1)
        ]
        await asyncio.sleep(0.5)  # the listings have asked
        review = asyncio.create_task(analyze(client, small.job_id, "calc.add"))
        all_listed = asyncio.gather(*listings)
        either: list[asyncio.Future[Any]] = [review, all_listed]
        done, _ = await asyncio.wait(either, timeout=GUARD_S, return_when=asyncio.FIRST_COMPLETED)
        listings_running = sum(not listing.done() for listing in listings)
        assert review in done, f"no review within {GUARD_S} s while the listings ran"
        response = review.result()
        results = await asyncio.wait_for(all_listed, GUARD_S)
    assert response.status_code == 200, response.text
    # Answered while the heavy listings were still running, not after them.
    assert listings_running > 0
    assert all(names == [] for names, _ in results)


async def test_concurrent_pages_of_one_snapshot_parse_it_once(
    nats_url: str, gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="analyzer.listing")
    async with job_stores(nats_url) as stores:
        heavy = await put_ready_job(stores, HEAVY, repo="heavy")
    async with analyzer(settings(nats_url, gateway, analyzer_functions_page_s=0.2)) as client:
        walks = await asyncio.gather(
            *(walk(client, heavy.job_id, prefix="pkg.big.f7499", limit=20) for _ in range(4))
        )
    for names, _ in walks:
        assert names == ["pkg.big.f7499", *(f"pkg.big.f7499{d}" for d in range(10))]
    parsed = [r.getMessage() for r in caplog.records if r.getMessage().endswith("parsing pkg/big.py")]
    assert len(parsed) == 1, parsed


async def test_a_listing_worker_that_ended_is_replaced_and_blames_no_file() -> None:
    worker = ListingWorker(BUDGET, max_entries=2, max_bytes=10**9)
    files = {"m.py": b"def f():\n    pass\n"}
    everything = Query.checked("", "", 10, "")
    try:
        answer = await worker.page("k", files, "octo/m", everything, budget_s=30, max_names=10)
        assert answer is not None
        assert [e.name for e in answer.functions] == ["m.f"]
        process = worker._process
        assert process is not None
        process.kill()  # not by a parse: no file is to blame
        process.join()
        again = await worker.page("k", files, "octo/m", everything, budget_s=30, max_names=10)
        assert again is not None
        assert [e.name for e in again.functions] == ["m.f"]
        assert worker._over_budget == {}
    finally:
        await worker.close()


@pytest.mark.alone
async def test_a_file_over_the_cpu_budget_is_set_aside_and_the_listing_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    huge = "".join(f"def g{i}():\n    pass\n" for i in range(3 * DEFS)).encode()  # seconds to parse
    files = {"a.py": b"def one():\n    pass\n", "z.py": huge, "zz.py": b"def two():\n    pass\n"}
    worker = ListingWorker(
        ParseBudget(max_bytes=10_000_000, cpu_s=1, memory_bytes=2_000_000_000), max_entries=2, max_bytes=10**9
    )
    try:
        answer = await worker.page(
            "k", files, "octo/z", Query.checked("", "", 10, ""), budget_s=60, max_names=10**6
        )
    finally:
        await worker.close()
    assert answer is not None
    # The kernel ended the worker while it parsed z.py: only z.py is left out, and the page goes on.
    assert [e.full_name for e in answer.functions] == ["a.one", "zz.two"]
    assert answer.next_cursor is None
    assert "z.py set aside, its parse took more than 1 s of CPU (ANALYZER_PARSE_CPU_S)" in caplog.text


@pytest.mark.alone
@pytest.mark.slow
async def test_sigterm_during_a_heavy_listing_exits_within_the_shutdown_bound(
    nats_url: str, gateway: FakeGateway, service_logs: Path
) -> None:
    async with job_stores(nats_url) as stores:
        heavy = await put_ready_job(stores, HEAVIER, repo="heavy")
    env = {
        "NATS_URL": nats_url,
        "GATEWAY_URL": gateway.base_url,
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        "ANALYZER_TYPECHECK_ENABLED": "false",
    }
    with service_process("analyzer", env, service_logs, port_variable="ANALYZER_PORT") as process:
        async with httpx.AsyncClient(base_url=process.url, timeout=GUARD_S) as client:
            listing = asyncio.create_task(walk(client, heavy.job_id, contains="no-such-name", limit=1000))
            first = asyncio.create_task(page(client, heavy.job_id, contains="no-such-name"))
            # The first page answered with its cursor at the start: the worker is still parsing.
            await asyncio.wait([first], timeout=5.0)
            signalled = time.monotonic()
            code = await asyncio.to_thread(process.terminate, SHUTDOWN_TIMEOUT_S + 10)
            exited_in = time.monotonic() - signalled
            listing.cancel()
            first.cancel()
            await asyncio.gather(listing, first, return_exceptions=True)
        log = process.log()
    assert code == 0, log
    assert exited_in < SHUTDOWN_TIMEOUT_S, (exited_in, log[-4000:])
    assert "Traceback" not in log
