"""How long the composed stack takes to come up, service by service, and what a health probe costs.

The figures behind the HEALTHCHECK timings in docker/Dockerfile (start period, interval,
timeout). No Docker engine runs here, so each service runs as the image and compose configure
it, as a process on loopback (tests/docker/composed.py), in depends_on order; "healthy after" is
from process start until the image's own HEALTHCHECK command first passes (probes every 50 ms).
Container start-up adds its own overhead on top.

    python -m bench compose_startup [--rounds=N]
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from tests.docker.composed import (
    Running,
    composed,
    container_env,
    pull_model_as_the_image_build_does,
    start,
    start_order,
)
from tests.docker.project import COMPOSE_FILE, ROOT
from tests.support.nats import running_nats_server

PROBES = 20


async def one_round(work: Path, models: Path) -> tuple[dict[str, float], float, list[float]]:
    """(healthy-after seconds per service, seconds until all are healthy, probe seconds)."""
    services = composed(COMPOSE_FILE)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    app = work / "app"
    app.mkdir(exist_ok=True)
    with running_nats_server(work / "jetstream") as nats_url:
        running: dict[str, Running] = {}
        began = time.monotonic()
        async with AsyncExitStack() as stack:
            for name in start_order(services):
                env, port = container_env(name, services[name], running, nats_url, models, {})
                running[name] = await stack.enter_async_context(
                    start(name, env, port, app, logs, poll_s=0.05)
                )
            total = time.monotonic() - began
            probes = []
            analyzer = running["analyzer"]
            for _ in range(PROBES):
                probe_start = time.perf_counter()
                probe = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(ROOT / "docker" / "healthcheck.py"),
                    "ANALYZER_PORT",
                    "8000",
                    env=analyzer.env,
                    stdout=asyncio.subprocess.DEVNULL,
                )
                assert await probe.wait() == 0
                probes.append(time.perf_counter() - probe_start)
        return {name: service.healthy_after_s for name, service in running.items()}, total, probes


async def run(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="compose-startup-") as folder:
        work = Path(folder)
        await pull_model_as_the_image_build_does(work / "models")  # offline: the bundled model
        per_service: dict[str, list[float]] = {}
        totals: list[float] = []
        probes: list[float] = []
        for index in range(rounds):
            healthy, total, round_probes = await one_round(work / f"round{index}", work / "models")
            for name, seconds in healthy.items():
                per_service.setdefault(name, []).append(seconds)
            totals.append(total)
            probes += round_probes
        for name, values in per_service.items():
            print(
                f"{name:<11} healthy after: median {statistics.median(values):.2f} s, "
                f"max {max(values):.2f} s ({rounds} starts)"
            )
        whole = f"median {statistics.median(totals):.2f} s, max {max(totals):.2f} s"
        print(f"whole stack in depends_on order: {whole}")
        probes.sort()
        median, p95 = statistics.median(probes) * 1000, probes[int(len(probes) * 0.95) - 1] * 1000
        print(f"one HEALTHCHECK probe (python healthcheck.py): median {median:.0f} ms, p95 {p95:.0f} ms")


def main(argv: list[str]) -> None:
    rounds = 3
    for arg in argv:
        if arg.startswith("--rounds="):
            rounds = int(arg.split("=", 1)[1])
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(rounds))


if __name__ == "__main__":
    main(sys.argv[1:])
