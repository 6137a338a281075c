"""A bounded soak (issue #11): mixed jobs and reviews against the real services, faults included.

A real nats-server, `python -m fetcher`, `python -m analyzer` and `python -m gateway` run as
processes on loopback; the gateway's provider is the fake OpenAI-compatible server of
tests/support/fake_llm.py, answering a fraction of calls with faults (empty content, garbage JSON,
500, 429 with Retry-After, an answer trickling past LLM_TOTAL_TIMEOUT, one over
LLM_MAX_RESPONSE_BYTES); the fake GitHub serves ordinary repositories and hostile ones (a 1 GiB
long-name header, a gzip bomb, a truncated tar, a download trickling past
FETCHER_DOWNLOAD_TIMEOUT_S, a missing repository) and one whose snapshot holds a `# coding: rot13`
file and a 2 MB one-line file. CONCURRENCY clients loop over job starts (bad URLs among them),
function lookups (found, missing, unparsable, on failed and unknown jobs), gateway reviews and
/health, for MINUTES or REQUESTS, whichever ends first.

Printed at the end: requests by action and status; unexpected ones (any 500, any status the
action does not allow, any transport error); every job's final state (non-terminal after the
grace period: must be 0; ordinary jobs ready, hostile ones failed); each service's RSS at start
(after a warm-up round), peak and end (after the load stops and the grace period), and whether
end is within RSS_MARGIN of start; every service healthy. Exits non-zero if a check fails.

Usage: python -m bench soak [--minutes 15] [--concurrency=3] [--requests=200000] [--seed=11]
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import re
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats

from bench.fetch import _gzip_bomb, _huge_header
from jobs_contract import TERMINAL, JobStatus
from tests.support.fake_github import FakeGitHub, build_tarball, make_sha
from tests.support.fake_llm import FakeLLM, Reply, completion, error_reply
from tests.support.nats import running_nats_server
from tests.support.servers import ServiceProcess, service_process, serving

MIB = 1024 * 1024
# End RSS may exceed start RSS by this much: the snapshot cache and allocator arenas keep some.
RSS_MARGIN_MIB = 64
RSS_MARGIN_FRACTION = 0.5
LLM_TOTAL_TIMEOUT_S = 3
LLM_MAX_RESPONSE_BYTES = 64 * 1024
DOWNLOAD_TIMEOUT_S = 3
WAIT_TIMEOUT_S = 15

SMALL = {
    "pkg/__init__.py": "",
    "pkg/mod.py": (
        "def double(x):\n    return x * 2\n\n\n"
        "class Greeter:\n    def hello(self, name):\n        return 'hi ' + name\n"
    ),
    "README.md": "# demo\n",
}
APP = {
    f"app/part{n}.py": "".join(f"def f{n}_{i}(a, b):\n    return a + b * {i}\n\n\n" for i in range(40))
    for n in range(20)
}
WEIRD = {
    "weird/ok.py": "def fine(x):\n    return x\n",
    # rot13 is a text transform, not a codec Python decodes source with: the file's lookups are 422.
    # (Its `def` is plain ASCII so the name index sees it: written in rot13, `qrs uvqqra`, the
    # lookup is a 404, since nothing names a `hidden` the analyzer could read.)
    "weird/rot.py": "# coding: rot13\ndef hidden(x):\n    return x\n",
    # Over ANALYZER_PARSE_MAX_BYTES (2,000,000) on one line.
    "weird/huge.py": "DATA = [" + "1, " * 700_000 + "]\ndef after(x):\n    return x\n",
}
CODE = [
    "def add(a, b):\n    return a + b\n",
    "def read(path):\n    f = open(path)\n    return f.read()\n",
    "def find(items, x):\n    for i in range(len(items)):\n        if items[i] == x:\n            return i\n",
    "import os\n\ndef run(cmd):\n    os.system(cmd)\n",
]
# action -> statuses it may answer; anything else (a 500 above all) fails the soak.
EXPECTED: dict[str, set[int]] = {
    "start": {200},
    "start bad url": {422},
    "job": {200},
    "function found": {200, 502, 504},
    "function missing": {404},
    "function unparsable": {422},
    "function failed job": {409},
    "function unknown job": {404},
    "analyze": {200, 502, 504},
    "health": {200},
}


def _truncated() -> bytes:
    """An ordinary tarball cut in the middle of a member's data, re-compressed: a truncated tar."""
    raw = gzip.decompress(build_tarball("evil", "truncated", make_sha("cut"), {"a.py": b"x = 1\n" * 400}))
    # Blocks: pax global header and its data, the top folder, a.py's header, then its 2,400 bytes.
    return gzip.compress(raw[: 4 * 512 + 1000])


# -- the provider: the fake OpenAI-compatible server, with faults ---------------------------------


def _faults() -> dict[str, Reply]:
    body = completion(json.dumps({"suggestions": ["Name the magic number."]})).body
    pieces = tuple(body[i : i + 16] for i in range(0, len(body), 16))
    return {
        "empty content": completion(""),
        "null content": completion(None),
        "garbage JSON content": completion("{suggestions: [oops"),
        "garbage body": Reply(body=b"{not json at all"),
        "HTTP 500": error_reply(500),
        "HTTP 429 Retry-After 1": error_reply(429, "slow down", retry_after="1"),
        # Each piece arrives well within LLM_READ_TIMEOUT, the whole well past LLM_TOTAL_TIMEOUT.
        "trickle": Reply(chunks=pieces, chunk_delay=(2 * LLM_TOTAL_TIMEOUT_S) / len(pieces)),
        "huge body": completion("x" * (2 * LLM_MAX_RESPONSE_BYTES)),
    }


@dataclass
class FaultyLLM(FakeLLM):
    """The fake provider answering `fault_rate` of its chat completions with one of `_faults()`."""

    fault_rate: float = 0.3
    rng: random.Random = field(default_factory=random.Random)
    faults: Counter[str] = field(default_factory=Counter)
    calls: int = 0

    def _next(self, path: str) -> Reply:
        self.requests.clear()  # a soak must not grow its own memory with every request recorded
        if path.endswith("/chat/completions"):
            self.calls += 1
            if self.rng.random() < self.fault_rate:
                name, reply = self.rng.choice(sorted(_faults().items()))
                self.faults[name] += 1
                return reply
        return super()._next(path)


# -- the services ------------------------------------------------------------------------------


@dataclass
class Cluster:
    analyzer: ServiceProcess
    gateway: ServiceProcess
    fetcher: ServiceProcess
    nats_url: str
    nats_pid: int

    def pids(self) -> dict[str, int]:
        return {
            "nats-server": self.nats_pid,
            "fetcher": self.fetcher.process.pid,
            "analyzer": self.analyzer.process.pid,
            "gateway": self.gateway.process.pid,
        }


def _child_named(name: str) -> int:
    """The pid of this process's child whose command is `name` (the nats-server just started)."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        parent = int(text.rsplit(")", 1)[1].split()[1])
        if parent == me and command == name:
            return int(stat.parent.name)
    raise RuntimeError(f"no child process named {name}")


@contextmanager
def cluster(folder: Path, github: FakeGitHub, llm_url: str) -> Iterator[Cluster]:
    with ExitStack() as stack:
        nats_url = stack.enter_context(running_nats_server(folder / "js"))
        common = {"NATS_URL": nats_url, "LOG_LEVEL": "WARNING"}
        gateway = stack.enter_context(
            service_process(
                "gateway",
                {
                    **common,
                    "LLM_PROVIDER": "openai",
                    "OPENAI_API_KEY": "sk-soak",
                    "OPENAI_BASE_URL": f"{llm_url}/v1",
                    "LLM_TOTAL_TIMEOUT": str(LLM_TOTAL_TIMEOUT_S),
                    "LLM_MAX_RESPONSE_BYTES": str(LLM_MAX_RESPONSE_BYTES),
                    "LLM_RETRY_BACKOFF": "0.1",
                    "LLM_RETRY_AFTER_MAX": "2",
                },
                folder,
                port_variable="GATEWAY_PORT",
                timeout=120,
            )
        )
        analyzer = stack.enter_context(
            service_process(
                "analyzer",
                {
                    **common,
                    "GATEWAY_URL": f"{gateway.url}/v1",
                    "GATEWAY_TIMEOUT_S": "30",
                    "ANALYZER_WAIT_TIMEOUT_S": str(WAIT_TIMEOUT_S),
                },
                folder,
                port_variable="ANALYZER_PORT",
                timeout=120,
            )
        )
        # After the analyzer, which provisions the streams the fetcher checks.
        fetcher = stack.enter_context(
            service_process(
                "fetcher",
                {
                    **common,
                    "GITHUB_API_URL": github.api_url,
                    "FETCHER_CONCURRENCY": "4",
                    "FETCHER_DOWNLOAD_TIMEOUT_S": str(DOWNLOAD_TIMEOUT_S),
                    "FETCHER_MAX_UNPACKED_BYTES": str(256 * MIB),
                    "FETCHER_HTTP_RETRIES": "1",
                    "FETCHER_RETRY_BACKOFF_S": "0.1",
                },
                folder,
                port_variable="FETCHER_HEALTH_PORT",
                timeout=120,
            )
        )
        yield Cluster(analyzer, gateway, fetcher, nats_url, _child_named("nats-server"))


# -- memory --------------------------------------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (its peak) of a process, in KiB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(value.split()[0]) for key, value in re.findall(r"^(VmRSS|VmHWM):\s+(.+)$", status, re.M)}


def rss_within_margin(start_kib: int, end_kib: int) -> bool:
    return end_kib - start_kib <= max(RSS_MARGIN_MIB * 1024, RSS_MARGIN_FRACTION * start_kib)


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Options:
    seconds: float = 900.0
    concurrency: int = 3
    requests: int = 200_000
    seed: int = 11
    fault_rate: float = 0.3
    # Seconds each client waits between its requests: the soak is about time, not throughput.
    pause: float = 0.05
    grace: float = 60.0


@dataclass
class Tally:
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, str]] = field(default_factory=Counter)
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> kind (ordinary, hostile)
    # The same job ids by kind, in order: lookups pick from them without scanning every job.
    by_kind: dict[str, list[str]] = field(default_factory=lambda: {"ordinary": [], "hostile": []})
    total: int = 0


ORDINARY = {"octo/small": SMALL, "octo/app": APP, "octo/weird": WEIRD}
HOSTILE = ["evil/longname", "evil/bomb", "evil/truncated", "evil/slow", "evil/missing"]
FOUND = {
    "octo/small": ["pkg.mod.double", "pkg.mod.Greeter.hello"],
    "octo/app": [f"app.part{n}.f{n}_{i}" for n in range(20) for i in range(0, 40, 7)],
    "octo/weird": ["weird.ok.fine"],
}
UNPARSABLE = ["weird.rot.hidden", "weird.huge.after"]


class Load:
    def __init__(self, analyzer: str, gateway: str, fetcher: str, options: Options) -> None:
        self.urls = {"analyzer": analyzer, "gateway": gateway, "fetcher": fetcher}
        self.options = options
        self.tally = Tally()
        self.rng = random.Random(options.seed)
        self.repo_of: dict[str, str] = {}

    async def call(
        self, client: httpx.AsyncClient, action: str, method: str, url: str, **kw: object
    ) -> httpx.Response | None:
        self.tally.total += 1
        try:
            response = await client.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            self.tally.statuses[(action, type(error).__name__)] += 1
            self.tally.unexpected[(action, type(error).__name__)] += 1
            return None
        status = str(response.status_code)
        self.tally.statuses[(action, status)] += 1
        if response.status_code not in EXPECTED[action]:
            self.tally.unexpected[(action, f"{status} {response.text[:160]}")] += 1
        return response

    async def start(self, client: httpx.AsyncClient, repo: str, kind: str) -> None:
        url = self.urls["analyzer"] + "/analyze/start"
        response = await self.call(
            client, "start", "POST", url, json={"repo_url": f"https://github.com/{repo}"}
        )
        if response is not None and response.status_code == 200:
            job_id = response.json()["job_id"]
            self.tally.jobs[job_id] = kind
            self.tally.by_kind[kind].append(job_id)
            self.repo_of[job_id] = repo

    async def step(self, client: httpx.AsyncClient) -> None:
        rng, analyzer = self.rng, self.urls["analyzer"]
        roll = rng.random()
        if roll < 0.12:
            await self.start(client, rng.choice(sorted(ORDINARY)), "ordinary")
        elif roll < 0.18:
            await self.start(client, rng.choice(HOSTILE), "hostile")
        elif roll < 0.20:
            await self.call(
                client,
                "start bad url",
                "POST",
                analyzer + "/analyze/start",
                json={"repo_url": "https://gitlab.com/a/b"},
            )
        elif roll < 0.55 and self.tally.jobs:
            await self.lookup(client)
        elif roll < 0.60 and self.tally.jobs:
            job_id = rng.choice(list(self.tally.jobs))
            await self.call(client, "job", "GET", f"{analyzer}/analyze/jobs/{job_id}")
        elif roll < 0.85:
            code = rng.choice(CODE)
            if rng.random() < 0.5:  # a new body: a cache miss, so the provider (and its faults) answers
                code += f"# variant {rng.getrandbits(40)}\n"
            await self.call(
                client, "analyze", "POST", self.urls["gateway"] + "/analyze", json={"function_code": code}
            )
        else:
            service = rng.choice(sorted(self.urls))
            await self.call(client, "health", "GET", self.urls[service] + "/health")

    async def lookup(self, client: httpx.AsyncClient) -> None:
        rng, url = self.rng, self.urls["analyzer"] + "/analyze/function"
        roll = rng.random()
        ordinary, hostile = self.tally.by_kind["ordinary"], self.tally.by_kind["hostile"]
        if roll < 0.05:
            body, action = (
                {"job_id": f"nope{rng.getrandbits(32)}", "function_name": "a.b"},
                "function unknown job",
            )
        elif roll < 0.15 and hostile:
            # Only once the job has failed: a lookup on a job still fetching waits, then 409 too.
            body, action = {"job_id": rng.choice(hostile), "function_name": "a.b"}, "function failed job"
        elif ordinary:
            job_id = rng.choice(ordinary)
            repo = self.repo_of[job_id]
            if repo == "octo/weird" and roll < 0.45:
                body, action = (
                    {"job_id": job_id, "function_name": rng.choice(UNPARSABLE)},
                    "function unparsable",
                )
            elif roll < 0.35:
                body, action = (
                    {"job_id": job_id, "function_name": "pkg.nothing.here_at_all"},
                    "function missing",
                )
            else:
                body, action = {"job_id": job_id, "function_name": rng.choice(FOUND[repo])}, "function found"
        else:
            return
        await self.call(client, action, "POST", url, json=body)

    async def run(self, until: float) -> None:
        limits = httpx.Limits(max_connections=4 * self.options.concurrency)
        async with httpx.AsyncClient(timeout=90, limits=limits) as client:

            async def worker() -> None:
                while time.monotonic() < until and self.tally.total < self.options.requests:
                    await self.step(client)
                    await asyncio.sleep(self.options.pause)

            await asyncio.gather(*(worker() for _ in range(self.options.concurrency)))

    async def warm_up(self) -> None:
        """One of each kind of call, so that start RSS is measured with every code path imported."""
        async with httpx.AsyncClient(timeout=90) as client:
            for repo in ORDINARY:
                await self.start(client, repo, "ordinary")
            await self.start(client, "evil/missing", "hostile")
            for job_id, repo in list(self.repo_of.items()):
                if repo in FOUND:
                    body = {"job_id": job_id, "function_name": FOUND[repo][0]}
                    await self.call(
                        client,
                        "function found",
                        "POST",
                        self.urls["analyzer"] + "/analyze/function",
                        json=body,
                    )
            for code in CODE:
                await self.call(
                    client, "analyze", "POST", self.urls["gateway"] + "/analyze", json={"function_code": code}
                )


async def final_states(analyzer: str, jobs: dict[str, str], grace: float) -> dict[str, str]:
    """job id -> status, polled until every job is terminal or `grace` seconds have passed."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + grace
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            for job_id in jobs:
                if states.get(job_id) in TERMINAL:
                    continue
                response = await client.get(f"{analyzer}/analyze/jobs/{job_id}")
                states[job_id] = (
                    response.json()["status"]
                    if response.status_code == 200
                    else f"HTTP {response.status_code}"
                )
            if all(s in TERMINAL for s in states.values()) or time.monotonic() > deadline:
                return states
            await asyncio.sleep(1.0)


async def healthy(services: Cluster) -> dict[str, str]:
    """service -> "ok" or why not."""
    results: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name, service in (
            ("fetcher", services.fetcher),
            ("analyzer", services.analyzer),
            ("gateway", services.gateway),
        ):
            if service.process.poll() is not None:
                results[name] = f"exited with {service.process.returncode}"
                continue
            try:
                response = await client.get(service.url + "/health")
                results[name] = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                results[name] = repr(error)
    try:
        nc = await nats.connect(services.nats_url, connect_timeout=5, allow_reconnect=False)
        await nc.jetstream().account_info()
        await nc.close()
        results["nats-server"] = "ok"
    except Exception as error:  # whatever it is, the server is not healthy
        results["nats-server"] = repr(error)
    return results


async def sample_peaks(pids: dict[str, int], peaks: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, pid in pids.items():
            peaks[name] = max(peaks.get(name, 0), memory_kib(pid)["VmRSS"])
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def soak(options: Options) -> list[str]:
    """Run the soak, print its figures; returns the checks that failed (empty: all passed)."""
    failures: list[str] = []
    llm = FaultyLLM(fault_rate=options.fault_rate, rng=random.Random(options.seed + 1))
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub.running() as github:
        for repo, files in ORDINARY.items():
            owner, name = repo.split("/")
            github.add_repo(owner, name, dict(files))
        github.add_archive("evil", "longname", _huge_header(tarfile.GNUTYPE_LONGNAME))
        github.add_archive("evil", "bomb", _gzip_bomb(512))
        github.add_archive("evil", "truncated", _truncated())
        github.add_repo("evil", "slow", {f"m{n}.py": f"v = {n}\n" * 50 for n in range(10)})
        github.trickle("evil", "slow", size=16, delay=0.5)
        async with serving(llm) as llm_url:
            with cluster(Path(tmp), github, llm_url) as services:
                load = Load(services.analyzer.url, services.gateway.url, services.fetcher.url, options)
                await load.warm_up()
                pids = services.pids()
                start = {name: memory_kib(pid)["VmRSS"] for name, pid in pids.items()}
                peaks = dict(start)
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_peaks(pids, peaks, stop))
                began = time.monotonic()
                await load.run(began + options.seconds)
                ran = time.monotonic() - began
                states = await final_states(services.analyzer.url, load.tally.jobs, options.grace)
                await asyncio.sleep(5.0)  # let the last answers' buffers go
                stop.set()
                await sampler
                end = {name: memory_kib(pid) for name, pid in pids.items()}
                health = await healthy(services)
        tally = load.tally
        print(
            f"ran {ran:.0f} s: {tally.total} requests, {options.concurrency} clients, pause {options.pause} s"
        )
        print("requests by action and status:")
        for (action, status), count in sorted(tally.statuses.items()):
            print(f"  {action:22} {status:>20}  {count}")
        print(f"provider: {llm.calls} chat completions, faults: {dict(sorted(llm.faults.items()))}")
        print("unexpected answers:" if tally.unexpected else "unexpected answers: none")
        for (action, what), count in sorted(tally.unexpected.items()):
            print(f"  {action}: {what} x{count}")
            failures.append(f"unexpected answer to {action}: {what}")
        by_state = Counter((tally.jobs[j], s) for j, s in states.items())
        print(
            "jobs by kind and final state: "
            + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(by_state.items()))
        )
        non_terminal = sum(n for (_, s), n in by_state.items() if s not in TERMINAL)
        print(f"non-terminal jobs after a grace of up to {options.grace:.0f} s: {non_terminal}")
        if non_terminal:
            failures.append(f"{non_terminal} jobs not terminal")
        wrong = sum(
            n
            for (kind, s), n in by_state.items()
            if s in TERMINAL and s != (JobStatus.READY if kind == "ordinary" else JobStatus.FAILED)
        )
        if wrong:
            failures.append(f"{wrong} jobs ended in the wrong state (ordinary must be ready, hostile failed)")
        print(
            "RSS in MiB: start (after a warm-up round) / peak (sampled each second), VmHWM / end; "
            f"end within start + max({RSS_MARGIN_MIB} MiB, {RSS_MARGIN_FRACTION:.0%})"
        )
        for name in pids:
            within = rss_within_margin(start[name], end[name]["VmRSS"])
            mib = [
                start[name] / 1024,
                peaks[name] / 1024,
                end[name]["VmHWM"] / 1024,
                end[name]["VmRSS"] / 1024,
            ]
            print(
                f"  {name:12} {mib[0]:7.1f} / {mib[1]:7.1f}, {mib[2]:7.1f} / {mib[3]:7.1f}  "
                + ("within margin" if within else "OVER MARGIN")
            )
            if not within:
                failures.append(f"{name} RSS did not come back near its start")
        print("health at the end: " + ", ".join(f"{k} {v}" for k, v in health.items()))
        failures += [f"{name} not healthy: {why}" for name, why in health.items() if why != "ok"]
    print("SOAK PASSED" if not failures else "SOAK FAILED:\n  " + "\n  ".join(failures))
    return failures


def parse(argv: list[str]) -> Options:
    values: dict[str, str] = {}
    for arg in argv:
        key, _, value = arg.removeprefix("--").partition("=")
        values[key.replace("-", "_")] = value
    options = Options()
    if "minutes" in values:
        options.seconds = 60 * float(values.pop("minutes"))
    for key, value in values.items():
        if not hasattr(options, key):
            raise SystemExit(f"unknown option --{key}; see bench/soak.py")
        setattr(options, key, type(getattr(options, key))(value))
    return options


def main(argv: list[str]) -> None:
    if asyncio.run(soak(parse(argv))):
        raise SystemExit(1)
