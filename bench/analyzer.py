"""POST /analyze/function through HTTP with an instant model, on a stdlib-sized snapshot.

Runs a real nats-server, `python -m analyzer` as its own process, and an instant fake gateway
(answers at once) with the load generator in this process. Figures:
- first lookup after the job is ready: loaded by the review itself (read from the Object Store,
  check, decode, index, find, gateway call), and preloaded on the fetcher's completed event;
- later lookups one at a time, p50/p99: while the index warm-up (ANALYZER_WARM_INDEX) is still
  parsing in the background, then names never asked before once the warm-up has ended ("first
  touch"; with --warm-index=0 their files are not parsed yet, the figure before the warm-up
  existed), and names asked before (warm);
- throughput: requests/s with several requests in flight (targets: first <= 300 ms, later p99
  <= 20 ms, >= 300 requests/s on 2 cores).

Options: --names=N (distinct function names, default 500), --requests=N (throughput run, default
3000), --concurrency=N (default 16), --seed=S (default 5), --warm-index=0|1 (default 1: the
analyzer's default; 0 sets ANALYZER_WARM_INDEX=false).

--heavy=1 runs only this instead: the heaviest lookups (a 9 MB one-line list, a 1.9 MB one just
under ANALYZER_PARSE_MAX_BYTES, an 8.6 MB file of 300k defs asked for two names it lacks, one unlike
and one like its own: `defs.f1234567` makes the suggestions compare it with most of them) while `/health`
and warm lookups of another job are timed, and 404s of another job (names never asked: each needs
a search of that job's text), against the same when idle (--samples=N each, default 300), and the
peak resident memory of the analyzer and of its worker processes.

--transport=1 runs only this instead: the analyzer's gateway client (`GatewayClient`, aiohttp) against
an instant upstream (bench.gateway's, in its own process), and the same call made as the analyzer
made it before (the `openai` package over aiohttp, `DefaultAioHttpClient`, its raw answer decoded
with msgspec): wall time and this process's CPU per review, --requests=N each (default 3000),
alternating rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
from openai import AsyncOpenAI, DefaultAioHttpClient

from analyzer.review import GatewayClient
from bench.gateway import MODEL, _free_port, _start
from bench.lookup import dotted_names
from jobs_contract import EVENT_COMPLETED, JobEvent, JobStatus, event_subject
from servicekit.openai_wire import CompletionRead
from tests.analyzer.helpers import stdlib_files
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.nats import running_nats_server
from tests.support.servers import service_process, serving


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _announce(nats_url: str, job_id: str) -> None:
    """Publish the completed event the fetcher publishes when a job turns ready."""
    client = await nats.connect(nats_url)
    try:
        event = JobEvent(job_id=job_id, event=EVENT_COMPLETED, status=JobStatus.READY, at=time.time())
        await client.publish(event_subject(job_id, EVENT_COMPLETED), msgspec.json.encode(event))
        await client.flush()
    finally:
        await client.close()


def _options(argv: list[str]) -> dict[str, int]:
    options = {
        "names": 500,
        "requests": 3000,
        "concurrency": 16,
        "seed": 5,
        "warm-index": 1,
        "heavy": 0,
        "transport": 0,
        "samples": 300,
    }
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        key = key.replace("_", "-")
        if key in options:
            options[key] = int(value)
    return options


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"n={len(ordered)} p50 {_ms(statistics.median(ordered))}, p99 {_ms(p99)}, max {_ms(ordered[-1])}"


class _Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost far less than the server.

    httpx spends about as much CPU per request as the analyzer itself, and here both share two
    cores; this writes one request and reads one Content-Length response at a time.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> _Connection:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _post_raw(connection: _Connection, job_id: str, name: str) -> float:
    body = json.dumps({"job_id": job_id, "function_name": name}).encode()
    started = time.perf_counter()
    status, answer = await connection.post("/analyze/function", body)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{name}: HTTP {status} {answer[:300]!r}")
    return elapsed


async def _post(client: httpx.AsyncClient, job_id: str, name: str) -> float:
    started = time.perf_counter()
    response = await client.post("/analyze/function", json={"job_id": job_id, "function_name": name})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:300]}")
    return elapsed


async def _run(options: dict[str, int]) -> None:
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    files = stdlib_files()
    rng = random.Random(options["seed"])
    names = [name for name, _ in rng.sample(dotted_names(files), options["names"])]
    lines = sum(data.count(b"\n") for data in files.values())
    megabytes = sum(map(len, files.values())) / 1e6
    print(f"snapshot: {len(files)} files, {megabytes:.1f} MB, {lines} lines; {len(names)} distinct names")
    gateway = FakeGateway(record=False)
    with tempfile.TemporaryDirectory() as tmp, running_nats_server(Path(tmp) / "jetstream") as nats_url:
        async with serving(gateway) as gateway_url, job_stores(nats_url) as stores:
            env = {
                "NATS_URL": nats_url,
                "GATEWAY_URL": f"{gateway_url}/v1",
                "GATEWAY_RETRIES": "0",
                "LOG_LEVEL": "INFO",
                "ANALYZER_WARM_INDEX": "true" if options["warm-index"] else "false",
            }
            print(f"ANALYZER_WARM_INDEX={env['ANALYZER_WARM_INDEX']}")
            with service_process("analyzer", env, Path(tmp), port_variable="ANALYZER_PORT") as analyzer:
                limits = httpx.Limits(max_connections=options["concurrency"], max_keepalive_connections=64)
                async with httpx.AsyncClient(base_url=analyzer.url, timeout=60, limits=limits) as client:
                    stored_at = time.perf_counter()
                    ready = await put_ready_job(stores, files, owner="python", repo="cpython")
                    print(f"snapshot stored in the Object Store in {_ms(time.perf_counter() - stored_at)}")
                    await client.get("/health")  # opens the HTTP connection
                    # No completed event for this job: the first review loads the snapshot itself.
                    first = await _post(client, ready.job_id, names[0])
                    print(
                        "first lookup after ready, not preloaded (read+check+decode+index+find+gateway): "
                        + _ms(first)
                    )
                    # The same files as another commit, announced as the fetcher does.
                    announced = await put_ready_job(stores, files, owner="python", repo="cpython")
                    await _announce(nats_url, announced.job_id)
                    await asyncio.sleep(2.0)  # the analyzer preloads meanwhile
                    preloaded = await _post(client, announced.job_id, names[0])
                    print(f"first lookup after the completed event, preloaded: {_ms(preloaded)}")
                    # The announced copy: names asked while its index is (or would be) warming.
                    half = len(names) // 2
                    warming = [await _post(client, announced.job_id, name) for name in names[1:half]]
                    print(f"later lookups during the index warm-up: {_summary(warming)}")
                    if options["warm-index"]:
                        waited_at = time.perf_counter()
                        while len(re.findall(r"index warmed: .*", analyzer.log())) < 2:
                            if time.perf_counter() - waited_at > 300:
                                raise RuntimeError("the index warm-up did not end within 300 s")
                            await asyncio.sleep(0.2)
                        for line in re.findall(r"index warmed: .*", analyzer.log()):
                            print(f"analyzer log: {line}")
                    # Names never asked of this job: their files are parsed only if the warm-up did it.
                    cold = [await _post(client, ready.job_id, name) for name in names[1:]]
                    print(f"later lookups, first touch of each name (after the warm-up): {_summary(cold)}")
                    warm = [await _post(client, ready.job_id, name) for name in names]
                    print(f"later lookups, warm: {_summary(warm)}")

                    queue = [names[i % len(names)] for i in range(options["requests"])]
                    latencies: list[float] = []

                    connections = [
                        await _Connection.open(analyzer.url) for _ in range(options["concurrency"])
                    ]

                    async def worker(connection: _Connection) -> None:
                        while queue:
                            latencies.append(await _post_raw(connection, ready.job_id, queue.pop()))

                    cpu_before = _cpu_seconds(analyzer.process.pid)
                    started = time.perf_counter()
                    await asyncio.gather(*(worker(connection) for connection in connections))
                    elapsed = time.perf_counter() - started
                    cpu = _cpu_seconds(analyzer.process.pid) - cpu_before
                    for connection in connections:
                        connection.close()
                    print(
                        f"throughput: {len(latencies) / elapsed:.0f} requests/s ({len(latencies)} requests, "
                        f"{options['concurrency']} in flight; {_summary(latencies)})"
                    )
                    print(
                        f"analyzer CPU per request: {_ms(cpu / len(latencies))} "
                        f"(one core would serve {len(latencies) / cpu:.0f} requests/s; the load generator "
                        "and the fake gateway share the other core here)"
                    )
            loaded = re.findall(r"loaded: .*", analyzer.log())
            if loaded:
                print(f"analyzer log: snapshot {loaded[0]}")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _missing(client: httpx.AsyncClient, job_id: str, number: int) -> float:
    """A name never asked before, that the job lacks: its 404 searches the job's whole text."""
    started = time.perf_counter()
    response = await client.post(
        "/analyze/function", json={"job_id": job_id, "function_name": f"adder{number}"}
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 404:
        raise RuntimeError(f"adder{number}: HTTP {response.status_code} {response.text[:300]}")
    return elapsed


async def _health_and_lookups(
    client: httpx.AsyncClient, job_id: str, samples: int
) -> tuple[list[float], list[float]]:
    """`samples` times: /health, then a warm lookup of `job_id`."""
    health: list[float] = []
    lookups: list[float] = []
    for _ in range(samples):
        health.append(await _timed_get(client, "/health"))
        lookups.append(await _post(client, job_id, "calc.add"))
    return health, lookups


async def _missing_until(
    done: asyncio.Task[Any],
    client: httpx.AsyncClient,
    job_id: str,
    numbers: Iterator[int],
    took: list[float],
) -> None:
    """404s of `job_id` (names never asked) one after another, until `done` is."""
    while not done.done():
        took.append(await _missing(client, job_id, next(numbers)))


def _worker_processes(pid: int) -> list[int]:
    """The multiprocessing workers a process spawned, from any of its threads (Linux /proc lists
    a child under the thread that started it), not its resource tracker."""
    children = [
        c for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()
    ]
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _niceness(pid: int) -> str:
    """`nice N` (the warm-up's worker runs at a lower priority than the lookups' and the search's)."""
    return f"nice {Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[16]}"


async def _timed_get(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    response = await client.get(path)
    response.raise_for_status()
    return time.perf_counter() - started


async def _heavy(options: dict[str, int]) -> None:
    one_line = b"def big():\n    pass\n\n\nX = [" + b"1, " * 3_000_000 + b"]\n"  # 9 MB
    under_budget = b"def big():\n    pass\n\n\nX = [" + b"1, " * 630_000 + b"]\n"  # 1.9 MB
    many_defs = b"".join(b"def f%d(x):\n    return x\n" % i for i in range(300_000))  # 8.6 MB
    heavy_files = {"nine.py": one_line, "under.py": under_budget, "defs.py": many_defs, **_SMALL}
    print(
        "heavy files: nine.py 9.0 MB one-line list, under.py 1.9 MB one-line list, "
        f"defs.py {len(many_defs) / 1e6:.1f} MB of 300k defs"
    )
    samples = options["samples"]
    gateway = FakeGateway(record=False)
    with tempfile.TemporaryDirectory() as tmp, running_nats_server(Path(tmp) / "jetstream") as nats_url:
        async with serving(gateway) as gateway_url, job_stores(nats_url) as stores:
            env = {"NATS_URL": nats_url, "GATEWAY_URL": f"{gateway_url}/v1", "LOG_LEVEL": "WARNING"}
            with service_process("analyzer", env, Path(tmp), port_variable="ANALYZER_PORT") as analyzer:
                async with httpx.AsyncClient(base_url=analyzer.url, timeout=120) as client:
                    other = await put_ready_job(stores, _SMALL)
                    heavy = await put_ready_job(stores, heavy_files)
                    await _post(client, other.job_id, "calc.add")
                    # The same three series as while a heavy lookup runs, the 404s beside the others.
                    asked = iter(range(10**9))
                    idle_task = asyncio.create_task(_health_and_lookups(client, other.job_id, samples))
                    idle_missing: list[float] = []
                    await _missing_until(idle_task, client, other.job_id, asked, idle_missing)
                    idle_health, idle_lookup = await idle_task
                    print(f"idle: /health {_summary(idle_health)}")
                    print(f"idle: warm lookup of another job {_summary(idle_lookup)}")
                    print(f"idle: a 404 of another job (a name never asked) {_summary(idle_missing)}")
                    for name in ("nine.big", "under.big", "defs.nothing_like_this", "defs.f1234567"):
                        body = {"job_id": heavy.job_id, "function_name": name}
                        started = time.perf_counter()
                        task = asyncio.create_task(client.post("/analyze/function", json=body))
                        health: list[float] = []
                        lookups: list[float] = []
                        missing: list[float] = []
                        # Beside the other two, not between them: one that waits must not hold them up.
                        sampler = asyncio.create_task(
                            _missing_until(task, client, other.job_id, asked, missing)
                        )
                        while not task.done():
                            health.append(await _timed_get(client, "/health"))
                            lookups.append(await _post(client, other.job_id, "calc.add"))
                        await sampler
                        response = await task
                        took = time.perf_counter() - started
                        print(
                            f"{name}: HTTP {response.status_code} in {_ms(took)}: "
                            f"{response.json().get('detail', '')[:150]}"
                        )
                        if health:
                            print(f"  meanwhile: /health {_summary(health)}")
                            print(f"  meanwhile: warm lookup of another job {_summary(lookups)}")
                            print(f"  meanwhile: a 404 of another job {_summary(missing)}")
                    print(f"analyzer peak resident memory: {_peak_rss_mb(analyzer.process.pid):.0f} MB")
                    workers = _worker_processes(analyzer.process.pid)
                    print(
                        f"its {len(workers)} worker processes' peak resident memory: "
                        + ", ".join(f"{_peak_rss_mb(pid):.0f} MB ({_niceness(pid)})" for pid in workers)
                    )


_SMALL = {"calc.py": b"def add(a, b):\n    return a + b\n"}
_REVIEWED = "def mean(values):\n    # the average\n    return sum(values) / len(values)"


async def _openai_review(client: AsyncOpenAI) -> list[str]:
    """A review as the analyzer asked for it before its own client: the `openai` package."""
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": _REVIEWED}]
    )
    content = msgspec.json.decode(raw.content, type=CompletionRead).content()
    return msgspec.json.decode(content or "", type=_Suggestions).suggestions


class _Suggestions(msgspec.Struct):
    suggestions: list[str]


async def _transport(options: dict[str, int]) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", "bench.gateway:instant_upstream", "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log"]
    per_round = max(1, options["requests"] // 3)
    labels = ("the openai package over aiohttp", "GatewayClient (aiohttp)")
    figures: dict[str, tuple[list[float], float, int]] = {label: ([], 0.0, 0) for label in labels}
    with ExitStack() as stack:
        _start(argv, {}, url + "/v1/models", stack)
        for _ in range(3):
            for label in labels:
                async with AsyncExitStack() as clients:
                    review: Callable[[], Awaitable[object]]
                    if label == labels[0]:
                        client = AsyncOpenAI(
                            base_url=f"{url}/v1",
                            api_key="bench",
                            max_retries=0,
                            http_client=DefaultAioHttpClient(),
                        )
                        clients.push_async_callback(client.close)
                        review = partial(_openai_review, client)
                    else:
                        reviewer = await clients.enter_async_context(
                            GatewayClient(f"{url}/v1", model=MODEL, api_key="bench", timeout_s=60)
                        )
                        review = partial(reviewer.review, _REVIEWED)
                    for _ in range(50):  # connections open, code paths warm
                        await review()
                    latencies, cpu, count = figures[label]
                    cpu_before = time.process_time()
                    for _ in range(per_round):
                        started = time.perf_counter()
                        await review()
                        latencies.append(time.perf_counter() - started)
                    figures[label] = (latencies, cpu + time.process_time() - cpu_before, count + per_round)
    for label, (latencies, cpu, count) in figures.items():
        print(f"{label}: {_summary(latencies)}; client CPU {_ms(cpu / count)} a review")


def main(argv: list[str]) -> None:
    options = _options(argv)
    if options["transport"]:
        asyncio.run(_transport(options))
    elif options["heavy"]:
        asyncio.run(_heavy(options))
    else:
        asyncio.run(_run(options))


if __name__ == "__main__":
    main(sys.argv[1:])
