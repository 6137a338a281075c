"""`python -m bench shutdown [--runs=3]`: how long a stop takes, and how soon a handed-back fetch is ready.

Real processes on loopback (a nats-server, the fake GitHub, `python -m <service>`):
- for each service, started and healthy, then SIGTERM while idle: seconds until it has exited
  (and its exit status, which must be 0);
- two fetchers; the first is in the middle of a download trickling from the fake GitHub when it
  gets SIGTERM: seconds from the signal until the first has exited, and until the job is ready
  through the second (the request is nacked without delay; the ack wait is 120 s).

Process start-up is not measured: each figure starts at the signal.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from jobs_contract import JobStatus
from tests.fetcher.helpers import analyzer
from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server
from tests.support.servers import ServiceProcess, service_process

# service, its port variable, what else it needs
SERVICES = [
    ("analyzer", "ANALYZER_PORT", {}),
    ("gateway", "GATEWAY_PORT", {"LLM_PROVIDER": "local"}),
    ("fetcher", "FETCHER_HEALTH_PORT", {}),
    ("model_host", "MODEL_HOST_PORT", {"MODEL_THREADS": "1", "MODEL_CONTEXT_SIZE": "1024"}),
]
BOUND_S = 20


def _runs(argv: list[str]) -> int:
    for arg in argv:
        if arg.startswith("--runs="):
            return max(1, int(arg.split("=", 1)[1]))
    return 3


def _figures(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, max {max(values):.3f} s ({len(values)} runs)"


async def _stops(nats_url: str, github: FakeGitHub, logs: Path, runs: int) -> None:
    for package, port_variable, extra in SERVICES:
        took: list[float] = []
        codes: set[int] = set()
        env = {"NATS_URL": nats_url, "GITHUB_API_URL": github.api_url, **extra}
        for _ in range(runs):
            with service_process(package, env, logs, port_variable=port_variable) as service:
                signalled = time.monotonic()
                codes.add(await asyncio.to_thread(service.terminate, BOUND_S + 10))
                took.append(time.monotonic() - signalled)
        print(f"{package:<11} idle, SIGTERM to exit: {_figures(took)}, exit status {sorted(codes)}")


def _stop(service: ServiceProcess, signalled: float) -> tuple[int, float]:
    """SIGTERM (sent at `signalled`); the exit status and the seconds since then once it exited."""
    code = service.terminate(BOUND_S + 10)
    return code, time.monotonic() - signalled


async def _hand_back(nats_url: str, github: FakeGitHub, logs: Path, runs: int) -> None:
    exited: list[float] = []
    ready: list[float] = []
    env = {
        "NATS_URL": nats_url,
        "GITHUB_API_URL": github.api_url,
        "FETCHER_ACK_WAIT_S": "120",
        "FETCHER_PROGRESS_INTERVAL_S": "0",
    }
    async with analyzer(nats_url) as side:
        for run in range(runs):
            repo = f"slow{run}"
            github.add_repo("octo", repo, {"pkg/mod.py": "def f():\n    return 1\n"})
            github.trickle("octo", repo, size=1, delay=0.5)
            with service_process("fetcher", env, logs, port_variable="FETCHER_HEALTH_PORT") as first:
                job_id = await side.submit("octo", repo)
                while (await side.record(job_id)).bytes == 0:
                    await asyncio.sleep(0.02)
                with service_process("fetcher", env, logs, port_variable="FETCHER_HEALTH_PORT"):
                    github.trickle("octo", repo, size=64 * 1024, delay=0.0)
                    signalled = time.monotonic()

                    stopping = asyncio.create_task(asyncio.to_thread(_stop, first, signalled))
                    record = await side.wait(job_id, timeout=60)
                    ready.append(time.monotonic() - signalled)
                    code, took = await stopping
                    assert code == 0, first.log()
                    exited.append(took)
                    assert record.status == JobStatus.READY, record
    print(f"fetcher     mid-download, SIGTERM to its exit: {_figures(exited)}")
    print(f"fetcher     mid-download, SIGTERM to the job ready through the other fetcher: {_figures(ready)}")


async def _run(runs: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-shutdown-") as tmp,
        running_nats_server(Path(tmp) / "jetstream") as nats_url,
        FakeGitHub.running() as github,
    ):
        logs = Path(tmp) / "logs"
        logs.mkdir()
        await _stops(nats_url, github, logs, runs)
        await _hand_back(nats_url, github, logs, runs)


def main(argv: list[str]) -> None:
    asyncio.run(_run(_runs(argv)))
