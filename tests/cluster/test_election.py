"""The graders' flow rides through a JetStream leader election: no request fails when a node dies.

Four clients run start -> wait until ready -> /analyze/function back to back against two analyzers
(two fetchers, two gateways, a three-node cluster at NATS_REPLICAS=3); the node leading the `jobs`
KV is killed (SIGKILL) in the middle. Every flow must succeed: a request that meets the election
waits for it (NATS_REQUEST_DEADLINE_S) instead of answering 503. The flow times are printed
(`pytest -s`; `python -m bench cluster --scenario=election` records them), not asserted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from tests.cluster.test_node_loss import MODULE, Services, fake_llm, kv_leader, services
from tests.support.fake_github import FakeGitHub
from tests.support.nats_cluster import NatsCluster

pytestmark = [pytest.mark.nats, pytest.mark.slow]

__all__ = ["fake_llm", "services"]  # fixtures, imported to be found

CLIENTS = 4
# How long a client waits for a job to be ready before its flow counts as failed.
READY_WITHIN_S = 60.0


@dataclass
class Flows:
    """Each finished flow: (started at, seconds it took, the failure or None), and its steps' seconds."""

    done: list[tuple[float, float, str | None]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)

    def failures(self) -> list[str]:
        return [failure for _, _, failure in self.done if failure is not None]


async def one_flow(
    client: httpx.AsyncClient, services: Services, worker: int, turn: int, steps: dict[str, float]
) -> str | None:
    """start -> poll the job until ready -> review one function; None, or what went wrong.
    `steps` gets the seconds each step took."""
    first, second = services.analyzers[turn % 2], services.analyzers[(turn + 1) % 2]
    began = time.monotonic()
    started = await client.post(
        f"{first.url}/analyze/start", json={"repo_url": f"https://github.com/octo/demo{worker}"}
    )
    if started.status_code != 200:
        return f"start {started.status_code}: {started.text[:200]}"
    job_id = started.json()["job_id"]
    steps["start"] = time.monotonic() - began
    deadline = time.monotonic() + READY_WITHIN_S
    while True:
        job = await client.get(f"{second.url}/analyze/jobs/{job_id}")
        if job.status_code != 200:
            return f"job {job.status_code}: {job.text[:200]}"
        status = job.json()["status"]
        if status == "ready":
            break
        if status == "failed" or time.monotonic() > deadline:
            return f"job {status}: {job.text[:200]}"
        await asyncio.sleep(0.05)
    steps["ready"] = time.monotonic() - began - steps["start"]
    reviewed = await client.post(
        f"{first.url}/analyze/function", json={"job_id": job_id, "function_name": "mod.double"}
    )
    steps["function"] = time.monotonic() - began - steps["start"] - steps["ready"]
    if reviewed.status_code != 200:
        return f"function {reviewed.status_code}: {reviewed.text[:200]}"
    return None


async def run_flows(client: httpx.AsyncClient, services: Services, flows: Flows, stop: asyncio.Event) -> None:
    async def worker(number: int) -> None:
        turn = 0
        while not stop.is_set():
            began = time.monotonic()
            steps: dict[str, float] = {}
            try:
                failure = await one_flow(client, services, number, turn, steps)
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            flows.done.append((began, time.monotonic() - began, failure))
            flows.steps.append(steps)
            turn += 1

    await asyncio.gather(*(worker(n) for n in range(CLIENTS)))


async def test_flows_ride_through_the_loss_of_the_jobs_leader(
    nats_cluster: NatsCluster, fake_github: FakeGitHub, services: Services
) -> None:
    for worker in range(CLIENTS):
        fake_github.add_repo("octo", f"demo{worker}", {"mod.py": MODULE})
    flows = Flows()
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=90) as client:
        load = asyncio.create_task(run_flows(client, services, flows, stop))
        await asyncio.sleep(6)
        victim = await kv_leader(nats_cluster)
        killed_at = time.monotonic()
        nats_cluster.kill(victim)
        await asyncio.sleep(15)
        stop.set()
        await asyncio.wait_for(load, 120)

    around = [took for began, took, _ in flows.done if began + took >= killed_at]
    slowest = max(took for _, took, _ in flows.done)
    slowest_steps = flows.steps[[took for _, took, _ in flows.done].index(slowest)]
    print(
        f"\nelection: {len(flows.done)} flows ({len(around)} finished after the kill of "
        f"{nats_cluster.nodes[victim].name}, the jobs KV leader), {len(flows.failures())} failed, "
        f"slowest {slowest:.1f} s (after the kill: {max(around, default=0.0):.1f} s; its steps: "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in slowest_steps.items())
        + ")"
    )
    kinds = Counter(failure[:120] for failure in flows.failures())
    assert flows.failures() == [], kinds.most_common(8)
    assert around
