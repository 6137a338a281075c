"""The graders' flow on one NATS server (replicas 1) and on a three-node cluster (replicas 3).

One flow is `POST /analyze/start` for a small repository, then `POST /analyze/function` on the
new job, which waits for the fetch: a job record created, a fetch request queued, a tarball
downloaded from the fake GitHub, a snapshot stored, the record updated three times, a snapshot
read, a review from an instant fake gateway. The analyzer and the fetcher run as processes
(`python -m ...`), as deployed; CONCURRENCY flows run at once for SECONDS seconds after a warm-up.
On a cluster every write is acknowledged only once two of the three nodes hold it.

Usage: python -m bench cluster [--seconds=15] [--concurrency=8] [--order=single,cluster]

`--scenario=election` measures instead a node loss: four clients run start -> wait until ready
(GET the job) -> /analyze/function back to back against a three-node cluster at replicas 3; the
node leading the `jobs` KV is killed (SIGKILL) after a warm-up, and the flows go on for SECONDS
more. It reports the flows done, failed and the slowest, overall and of those finishing after
the kill. `--deadline=S` sets the analyzer's NATS_REQUEST_DEADLINE_S (default 20, the analyzer's own).

Usage: python -m bench cluster --scenario=election [--seconds=15] [--deadline=20]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import nats

from jobs_contract import JOBS_BUCKET
from tests.support.fake_gateway import FakeGateway
from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server
from tests.support.nats_cluster import running_nats_cluster, wait_for_jetstream
from tests.support.servers import ServiceProcess, service_process, serving

FILES: dict[str, bytes | str] = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "def double(x):\n    return x * 2\n",
    "README.md": "# demo\n",
}


@contextmanager
def services(
    nats_url: str, replicas: int, github: FakeGitHub, gateway_url: str, logs: Path, **extra: str
) -> Iterator[str]:
    """A fetcher and an analyzer on `nats_url` (`extra`: variables for both); yields the analyzer's URL."""
    common = {"NATS_URL": nats_url, "NATS_REPLICAS": str(replicas), "LOG_LEVEL": "WARNING", **extra}
    with ExitStack() as stack:
        analyzer: ServiceProcess = stack.enter_context(
            service_process(
                "analyzer",
                {**common, "GATEWAY_URL": gateway_url, "ANALYZER_PRELOAD": "false"},
                logs,
                port_variable="ANALYZER_PORT",
                timeout=120,
            )
        )
        # After the analyzer, which provisions the streams the fetcher checks.
        stack.enter_context(
            service_process(
                "fetcher",
                {**common, "GITHUB_API_URL": github.api_url, "FETCHER_CONCURRENCY": "4"},
                logs,
                port_variable="FETCHER_HEALTH_PORT",
                timeout=120,
            )
        )
        yield analyzer.url


async def load(url: str, seconds: float, concurrency: int) -> tuple[int, int, list[float]]:
    """(flows done, flows failed, seconds per flow) over `seconds` after a short warm-up."""
    done = failed = 0
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def flow() -> bool:
            started = await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/bench"})
            if started.status_code != 200:
                return False
            body = {"job_id": started.json()["job_id"], "function_name": "pkg.mod.double"}
            return (await client.post("/analyze/function", json=body)).status_code == 200

        for _ in range(3):
            await flow()
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done, failed
            while time.monotonic() < stop_at:
                began = time.monotonic()
                if await flow():
                    done += 1
                    latencies.append(time.monotonic() - began)
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, failed, latencies


def report(name: str, seconds: float, result: tuple[int, int, list[float]]) -> float:
    done, failed, latencies = result
    rate = done / seconds
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1 else float("nan")
    print(
        f"{name}: {rate:.1f} flows/s ({done} in {seconds:g} s, {failed} failed), "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    )
    return rate


async def run(seconds: float, concurrency: int, order: list[str]) -> None:
    gateway = FakeGateway(record=False)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, FakeGitHub.running() as github:
        github.add_repo("octo", "bench", FILES)
        root = Path(folder)
        async with serving(gateway) as gateway_root:
            gateway_url = f"{gateway_root}/v1"
            for setup in order:
                if setup == "single":
                    with (
                        running_nats_server(root / "single") as url,
                        services(url, 1, github, gateway_url, root) as api,
                    ):
                        result = await load(api, seconds, concurrency)
                    rates[setup] = report("one node, replicas 1", seconds, result)
                else:
                    with running_nats_cluster(root / "cluster") as cluster:
                        await wait_for_jetstream(cluster.url, replicas=3)
                        with services(cluster.url, 3, github, gateway_url, root) as api:
                            result = await load(api, seconds, concurrency)
                    rates[setup] = report("three nodes, replicas 3", seconds, result)
    ratio = rates["cluster"] / rates["single"]
    print(f"cluster / single: {ratio:.2f} x ({concurrency} flows in flight, all on one machine)")


async def election_flow(client: httpx.AsyncClient, ready_within_s: float = 60.0) -> str | None:
    """start -> GET the job until ready -> review; None, or what failed."""
    started = await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/bench"})
    if started.status_code != 200:
        return f"start {started.status_code}"
    job_id = started.json()["job_id"]
    give_up = time.monotonic() + ready_within_s
    while True:
        job = await client.get(f"/analyze/jobs/{job_id}")
        if job.status_code != 200:
            return f"job {job.status_code}"
        if job.json()["status"] == "ready":
            break
        if job.json()["status"] == "failed" or time.monotonic() > give_up:
            return f"job {job.json()['status']}"
        await asyncio.sleep(0.05)
    body = {"job_id": job_id, "function_name": "pkg.mod.double"}
    reviewed = await client.post("/analyze/function", json=body)
    return None if reviewed.status_code == 200 else f"function {reviewed.status_code}"


async def election(seconds: float, deadline_s: float, clients: int = 4, warm_up_s: float = 5.0) -> None:
    gateway = FakeGateway(record=False)
    flows: list[tuple[float, float, str | None]] = []  # (began, took, failure)
    with tempfile.TemporaryDirectory() as folder, FakeGitHub.running() as github:
        github.add_repo("octo", "bench", FILES)
        root = Path(folder)
        async with serving(gateway) as gateway_root:
            with running_nats_cluster(root / "cluster") as cluster:
                await wait_for_jetstream(cluster.url, replicas=3)
                extra = {"NATS_REQUEST_DEADLINE_S": str(deadline_s)}
                with services(cluster.url, 3, github, f"{gateway_root}/v1", root, **extra) as api:
                    async with httpx.AsyncClient(base_url=api, timeout=90) as client:
                        stop = asyncio.Event()

                        async def worker() -> None:
                            while not stop.is_set():
                                began = time.monotonic()
                                try:
                                    failure = await election_flow(client)
                                except httpx.HTTPError as exc:
                                    failure = type(exc).__name__
                                flows.append((began, time.monotonic() - began, failure))

                        running = asyncio.gather(*(worker() for _ in range(clients)))
                        await asyncio.sleep(warm_up_s)
                        victim = await _jobs_leader(cluster.url)
                        killed_at = time.monotonic()
                        cluster.kill([node.name for node in cluster.nodes].index(victim))
                        await asyncio.sleep(seconds)
                        stop.set()
                        await running
    slowest_after = max((took for began, took, _ in flows if began + took >= killed_at), default=0.0)
    after = [(took, failure) for began, took, failure in flows if began + took >= killed_at]
    failed = [failure for _, _, failure in flows if failure is not None]
    print(
        f"election (NATS_REQUEST_DEADLINE_S={deadline_s:g}, {clients} clients, leader {victim} killed "
        f"after {warm_up_s:g} s, {seconds:g} s more): {len(flows)} flows, {len(failed)} failed, "
        f"slowest {max(took for _, took, _ in flows):.1f} s; finishing after the kill: {len(after)} flows, "
        f"{sum(1 for _, failure in after if failure)} failed, slowest {slowest_after:.1f} s"
    )


async def _jobs_leader(url: str) -> str:
    client = await nats.connect(url.split(","))
    try:
        info = await client.jetstream().stream_info(f"KV_{JOBS_BUCKET}")
    finally:
        await client.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return info.cluster.leader


def main(argv: list[str]) -> None:
    options = dict(a.removeprefix("--").split("=", 1) for a in argv if "=" in a)
    if options.get("scenario") == "election":
        asyncio.run(election(float(options.get("seconds", 15)), float(options.get("deadline", 20))))
        return
    # --order=cluster,single runs the cluster first: a check that the order does not make the figure.
    order = options.get("order", "single,cluster").split(",")
    if sorted(order) != ["cluster", "single"]:
        raise SystemExit("--order takes single and cluster, comma-separated, each once")
    asyncio.run(run(float(options.get("seconds", 15)), int(options.get("concurrency", 8)), order))
