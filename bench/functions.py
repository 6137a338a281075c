"""GET /analyze/jobs/{job_id}/functions on a stdlib-sized snapshot: how fast names can be listed.

Runs a real nats-server and `python -m analyzer` as its own process (defaults: preload and index
warm-up on). Figures: the first page right after the job is ready, loaded by the listing itself
and preloaded on the fetcher's completed event (target <= 300 ms); the next pages; a prefix and a
substring query; and a walk over every page (each file is parsed once, by the listing or by the
warm-up, whichever comes first).

Options: --limit=N (names per page, default 100), --pages=N (pages timed after the first, default 10).

`--heavy=1` runs the adversarial case of issue #20 instead: a snapshot of one generated file of
75k definitions (1.7 MB). Figures: the first page (limit 1) and how long until a page holds its
name (following the cursors); a review of another job while 8 clients walk the heavy listing
(the walks' time too); SIGTERM while they walk, and how long the process takes to exit.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.analyzer import _announce
from tests.analyzer.helpers import stdlib_files
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.nats import running_nats_server
from tests.support.servers import service_process, serving

HEAVY_DEFS = 75_000
HEAVY_WALKS = 8


def _options(argv: list[str]) -> dict[str, int]:
    options = {"limit": 100, "pages": 10, "heavy": 0}
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key in options:
            options[key] = int(value)
    return options


async def _page(client: httpx.AsyncClient, job_id: str, **params: Any) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = await client.get(f"/analyze/jobs/{job_id}/functions", params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    page: dict[str, Any] = response.json()
    return elapsed, page


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def _run(options: dict[str, int]) -> None:
    files = stdlib_files()
    limit = options["limit"]
    print(f"snapshot: {len(files)} files, {sum(map(len, files.values())) / 1e6:.1f} MB; limit={limit}")
    with tempfile.TemporaryDirectory() as tmp, running_nats_server(Path(tmp) / "jetstream") as nats_url:
        async with job_stores(nats_url) as stores:
            env = {"NATS_URL": nats_url, "LOG_LEVEL": "INFO"}
            with service_process("analyzer", env, Path(tmp), port_variable="ANALYZER_PORT") as analyzer:
                async with httpx.AsyncClient(base_url=analyzer.url, timeout=120) as client:
                    await client.get("/health")
                    cold = await put_ready_job(stores, files, owner="python", repo="cpython")
                    started = time.perf_counter()
                    first, page = await _page(client, cold.job_id, limit=limit)
                    shown = len(page["functions"])
                    while not page["functions"] and page["next_cursor"] is not None:
                        _, page = await _page(client, cold.job_id, limit=limit, cursor=page["next_cursor"])
                    print(
                        f"first page after ready, not preloaded (load+index+parse): {_ms(first)} "
                        f"({shown} names); names after {_ms(time.perf_counter() - started)}"
                    )

                    announced = await put_ready_job(stores, files, owner="python", repo="cpython")
                    await _announce(nats_url, announced.job_id)
                    await asyncio.sleep(3.0)  # preloaded by now; the index warm-up still runs
                    early, _ = await _page(client, announced.job_id, limit=limit)
                    print(f"first page 3 s after the completed event, warm-up still running: {_ms(early)}")

                    again = await put_ready_job(stores, files, owner="python", repo="cpython")
                    await _announce(nats_url, again.job_id)
                    # The first page is worked out once the warm-up has parsed every file.
                    waited_at = time.perf_counter()
                    while f"snapshot {again.snapshot} index warmed" not in analyzer.log():
                        if time.perf_counter() - waited_at > 300:
                            raise RuntimeError("the index warm-up did not end within 300 s")
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(1.0)
                    first, page = await _page(client, again.job_id, limit=limit)
                    print(
                        f"first page after the completed event and the warm-up "
                        f"({time.perf_counter() - waited_at:.0f} s): {_ms(first)} "
                        f"({len(page['functions'])} names, first {page['functions'][0]['name']})"
                    )
                    later = []
                    for _ in range(options["pages"]):
                        elapsed, page = await _page(
                            client, announced.job_id, limit=limit, cursor=page["next_cursor"]
                        )
                        later.append(elapsed)
                    print(
                        f"next {len(later)} pages: p50 {_ms(statistics.median(later))}, max {_ms(max(later))}"
                    )
                    prefix, page = await _page(client, announced.job_id, limit=limit, prefix="json.")
                    print(f"prefix=json. first page: {_ms(prefix)} ({len(page['functions'])} names)")
                    contains, page = await _page(client, announced.job_id, limit=limit, contains="urlsplit")
                    print(
                        f"contains=urlsplit first page: {_ms(contains)} ({len(page['functions'])} names, "
                        f"next cursor {page['next_cursor']})"
                    )

                    walked_at = time.perf_counter()
                    pages, names, slowest, cursor = 0, 0, 0.0, ""
                    while True:
                        elapsed, page = await _page(client, cold.job_id, limit=1000, cursor=cursor)
                        pages, names, slowest = (
                            pages + 1,
                            names + len(page["functions"]),
                            max(slowest, elapsed),
                        )
                        cursor = page["next_cursor"]
                        if cursor is None:
                            break
                    print(
                        f"every page (limit=1000): {names} names in {pages} pages, "
                        f"{time.perf_counter() - walked_at:.1f} s, slowest page {_ms(slowest)}"
                    )


async def _walk(client: httpx.AsyncClient, job_id: str, **params: Any) -> float:
    """Seconds to walk every page of a listing, following the cursors."""
    started, cursor = time.perf_counter(), ""
    while True:
        _, page = await _page(client, job_id, **params, cursor=cursor)
        cursor = page["next_cursor"]
        if cursor is None:
            return time.perf_counter() - started


async def _heavy() -> None:
    heavy_files = {
        "pkg/__init__.py": b"",
        "pkg/big.py": "".join(f"def f{i}():\n    pass\n" for i in range(HEAVY_DEFS)).encode(),
    }
    small_files = {"calc.py": b"def add(a, b):\n    return a + b\n"}
    print(
        f"heavy snapshot: one file of {HEAVY_DEFS} definitions, {len(heavy_files['pkg/big.py']) / 1e6:.1f} MB"
    )
    gateway = FakeGateway()
    with tempfile.TemporaryDirectory() as tmp, running_nats_server(Path(tmp) / "jetstream") as nats_url:
        async with job_stores(nats_url) as stores, serving(gateway) as gateway_url:
            env = {
                "NATS_URL": nats_url,
                "GATEWAY_URL": f"{gateway_url}/v1",
                "LOG_LEVEL": "INFO",
                "ANALYZER_TYPECHECK_ENABLED": "false",
                "SHUTDOWN_TIMEOUT_S": "20",
            }
            with service_process("analyzer", env, Path(tmp), port_variable="ANALYZER_PORT") as analyzer:
                async with httpx.AsyncClient(base_url=analyzer.url, timeout=900) as client:
                    first_job = await put_ready_job(stores, heavy_files, owner="octo", repo="heavy")
                    started = time.perf_counter()
                    elapsed, page = await _page(client, first_job.job_id, limit=1)
                    shown, pages = len(page["functions"]), 1
                    while not page["functions"]:
                        _, page = await _page(client, first_job.job_id, limit=1, cursor=page["next_cursor"])
                        pages += 1
                    print(
                        f"first page (limit 1), snapshot load included: {_ms(elapsed)} ({shown} names); "
                        f"the name after {_ms(time.perf_counter() - started)} ({pages} pages)"
                    )

                    heavy = await put_ready_job(stores, heavy_files, owner="octo", repo="heavy")
                    small = await put_ready_job(stores, small_files)
                    walks = [
                        asyncio.create_task(_walk(client, heavy.job_id, contains="no-such-name", limit=1000))
                        for _ in range(HEAVY_WALKS)
                    ]
                    await asyncio.sleep(1.0)
                    asked = time.perf_counter()
                    response = await client.post(
                        "/analyze/function", json={"job_id": small.job_id, "function_name": "calc.add"}
                    )
                    reviewed = time.perf_counter() - asked
                    running = sum(not walk.done() for walk in walks)
                    took = await asyncio.gather(*walks)
                    print(
                        f"review of another job (its first: loads its snapshot) during {HEAVY_WALKS} "
                        f"walks of the heavy listing: {response.status_code} in {_ms(reviewed)}, "
                        f"{running} walks still running then; walks {min(took):.1f}-{max(took):.1f} s"
                    )

                    last = await put_ready_job(stores, heavy_files, owner="octo", repo="heavy")
                    walks = [
                        asyncio.create_task(_walk(client, last.job_id, contains="no-such-name", limit=1000))
                        for _ in range(HEAVY_WALKS)
                    ]
                    await asyncio.sleep(1.0)
                    signalled = time.perf_counter()
                    analyzer.process.terminate()
                    code = await asyncio.to_thread(analyzer.process.wait, 600)
                    exited = time.perf_counter() - signalled
                    await asyncio.gather(*walks, return_exceptions=True)
                    print(
                        f"SIGTERM during {HEAVY_WALKS} walks: exit {code} after {exited:.1f} s (bound 20 s)"
                    )


def main(argv: list[str]) -> None:
    options = _options(argv)
    asyncio.run(_heavy() if options["heavy"] else _run(options))
