"""Fetch a stdlib-sized repository: from publishing the FetchRequest to the job being ready.

The repository is this machine's Python standard library (about 1,800 .py files), padded with
non-Python files up to about 30 MB gzipped, like a CPython source tarball; the fake GitHub
serves it on loopback, a real nats-server holds the work queue, KV and Object Store, and the
fetcher runs as its own process (`python -m fetcher`), as deployed.

Figures: publish -> ready as the analyzer sees it (KV), and the fetcher's own split of that
into download time and download end -> ready (the issue's target: <= 1.5 s on 2 cores).

Then, each against a fresh fetcher process (issue #11):
- hostile: the fetcher's resident memory (VmRSS idle, VmHWM peak from /proc) after each hostile
  archive: 1 GiB long-name and pax headers in 1 MB archives, forty 10 MiB .py files (1.4 MB
  gzipped), a gzip bomb. The documented bound is idle + FETCHER_CONCURRENCY x (2 x
  FETCHER_MAX_SNAPSHOT_BYTES + FETCHER_MAX_FILE_BYTES + 5 MiB).
- slow: one download trickling at 2 bytes/s while small jobs come one after another; each small
  job's publish -> ready (they must not wait for the slow one).

- floor (issue #20; only when named): two downloads trickling at 2 bytes/s fill both slots, then a
  small job: its publish -> ready (the trickling ones give their slots up at the floor rate);
  floor-off: the same with FETCHER_MIN_RATE_BYTES_S=0 (the small job waits for the 300 s deadline).

Usage: python -m bench fetch [--runs=N] [--gz-mb=30] [--only=stdlib,hostile,slow,floor,floor-off]
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import random
import re
import sysconfig
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import nats
import nats.aio.client
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from fetcher.archive import INFLATE_ENGINE
from jobs_contract import FETCH_SUBJECT, FetchRequest, JobRecord, JobStatus, ensure_jetstream
from tests.support.fake_github import FakeGitHub, files_from_folder, make_sha
from tests.support.nats import running_nats_server
from tests.support.provision import provision_jobs_async
from tests.support.servers import ServiceProcess, service_process

SKIP = {"site-packages", "__pycache__"}
_FIGURES = re.compile(
    r"download ([\d.]+) s \((\d+) bytes\), download end to ready ([\d.]+) s "
    r"\(reading the rest ([\d.]+) s, storing ([\d.]+) s\)"
)


def stdlib_files() -> dict[str, bytes]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = files_from_folder(root)
    return {path: data for path, data in files.items() if not SKIP & set(path.split("/"))}


def build_archive(gz_target: int) -> tuple[bytes, str, int]:
    """(tar.gz, sha, python files): the stdlib, padded with text-like files."""
    sha = make_sha(f"bench-{uuid.uuid4()}")
    top = f"python-cpython-{sha[:7]}"
    files = stdlib_files()
    words = sorted({w for data in list(files.values())[:300] for w in re.findall(rb"[A-Za-z_]{3,12}", data)})
    rng = random.Random(7)
    buffer = io.BytesIO()
    # Level 6: what `git archive` (and so GitHub) uses.
    with tarfile.open(
        fileobj=buffer, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT, pax_headers={"comment": sha}
    ) as tar:

        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))

        for path, data in sorted(files.items()):
            add(f"Lib/{path}", data)
        # Padding: documentation-like text that compresses about 3:1, as C sources and docs do.
        # One block of random words, reused: deflate looks back only 32 KiB, so repeats of a
        # 1 MB block compress no better than fresh text, and building stays quick.
        text = b" ".join(rng.choice(words) for _ in range(150_000)) + b"\n"
        number = 0
        while buffer.tell() < gz_target:
            add(f"Doc/padding/part{number:04d}.rst", b"part %d\n" % number + text)
            number += 1
    py = sum(1 for path in files if path.endswith(".py"))
    return buffer.getvalue(), sha, py


async def run(runs: int, gz_mb: float) -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"fetcher gunzips with {INFLATE_ENGINE}"
    )
    started = time.perf_counter()
    archive, sha, py_files = build_archive(int(gz_mb * 1024 * 1024))
    print(
        f"repository: {py_files} .py files of the stdlib + padding, "
        f"{len(archive) / 1e6:.1f} MB gzipped (built in {time.perf_counter() - started:.1f} s)"
    )
    with tempfile.TemporaryDirectory() as folder, FakeGitHub.running() as github:
        github.chunk_size = 256 * 1024
        github.add_archive("python", "cpython", archive, sha=sha)
        with running_nats_server(Path(folder) / "js") as nats_url:
            await provision_jobs_async(nats_url)  # the analyzer's part: the fetcher only checks
            env = {
                "NATS_URL": nats_url,
                "GITHUB_API_URL": github.api_url,
                "LOG_LEVEL": "INFO",
                "FETCHER_PROGRESS_INTERVAL_S": "0.5",
            }
            with service_process(
                "fetcher", env, Path(folder), port_variable="FETCHER_HEALTH_PORT"
            ) as fetcher:
                totals = [await _one_run(number, nats_url, fetcher) for number in range(1, runs + 1)]
    print(f"best publish -> ready: {min(totals):.2f} s over {runs} runs")


async def _one_run(number: int, nats_url: str, fetcher: ServiceProcess) -> float:
    """Publish one FetchRequest as the analyzer does; print and return publish -> ready."""
    nc = await nats.connect(nats_url)
    try:
        stores = await ensure_jetstream(nc.jetstream())
        # A cold store each time: the commit's snapshot is stored again.
        for name in await _objects(stores.repos):
            await stores.repos.delete(name)
        job_id = uuid.uuid4().hex
        now = time.time()
        record = JobRecord(
            job_id=job_id,
            status=JobStatus.QUEUED,
            owner="python",
            repo="cpython",
            created_at=now,
            updated_at=now,
        )
        await stores.kv.put(job_id, msgspec.json.encode(record))
        t0 = time.perf_counter()
        request = FetchRequest(job_id=job_id, owner="python", repo="cpython", requested_at=now)
        await nc.jetstream().publish(
            FETCH_SUBJECT, msgspec.json.encode(request), headers={"Nats-Msg-Id": job_id}
        )
        final = await _wait_ready(stores.kv, job_id)
        total = time.perf_counter() - t0
    finally:
        await nc.close()
    await asyncio.sleep(0.2)  # let the fetcher's log line reach its file
    figures = _FIGURES.findall(fetcher.log())
    download, size, tail, reading, storing = figures[-1] if figures else ("?", "0", "?", "?", "?")
    print(
        f"run {number}: publish -> ready {total:.2f} s; fetcher: download {download} s "
        f"({int(size) / 1e6:.1f} MB), download end -> ready {tail} s "
        f"(reading the rest {reading} s, storing {storing} s); "
        f"{final.files} files, {final.bytes / 1e6:.1f} MB stored ({final.status})",
        flush=True,
    )
    return total


async def _objects(store: ObjectStore) -> list[str]:
    try:
        return [info.name for info in await store.list()]
    except NotFoundError:
        return []


async def _wait_ready(kv: KeyValue, job_id: str) -> JobRecord:
    while True:
        entry = await kv.get(job_id)
        record = msgspec.json.decode(entry.value or b"", type=JobRecord)
        if record.status in (JobStatus.READY, JobStatus.FAILED):
            return record
        await asyncio.sleep(0.005)


# -- issue #11: memory on hostile archives, independence from a slow download ---------------------

MIB = 1024 * 1024


def _gz_tar(build: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6, format=tarfile.GNU_FORMAT) as tar:
        build(tar)
    return buffer.getvalue()


def _huge_header(kind: bytes) -> bytes:
    """A real first member, then a `kind` header announcing 1 GiB with 1 MiB behind it."""
    info = tarfile.TarInfo("././@LongLink")
    info.type = kind
    info.size = 1 << 30
    first = tarfile.TarInfo("top/a.py")
    first.size = 6
    body = first.tobuf(tarfile.GNU_FORMAT) + b"a = 1\n".ljust(512, b"\0")
    body += info.tobuf(tarfile.GNU_FORMAT) + os.urandom(MIB)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


def _forty_big_files() -> bytes:
    data = b"#" * (10 * MIB)

    def build(tar: tarfile.TarFile) -> None:
        for number in range(40):
            info = tarfile.TarInfo(f"top/big{number:02d}.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    return _gz_tar(build)


def _many_long_names(count: int = 100_000) -> bytes:
    """FETCHER_MAX_MEMBERS empty members, each named by a 3 KB pax path."""

    def build(tar: tarfile.TarFile) -> None:
        for number in range(count):
            info = tarfile.TarInfo(f"top/{number:06d}" + "x" * 3000 + ".txt")
            tar.addfile(info)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buffer.getvalue()


def _gzip_bomb(mib: int = 3 * 1024) -> bytes:
    """One member of `mib` MiB of zeros (3 GiB: past FETCHER_MAX_UNPACKED_BYTES, 2 GiB, while inflating)."""
    info = tarfile.TarInfo("top/zeros.bin")
    info.size = mib * MIB
    block = b"\0" * MIB
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(info.tobuf(tarfile.GNU_FORMAT))]
    parts += [compressor.compress(block) for _ in range(mib)]
    return b"".join(parts) + compressor.flush()


def _memory_kib(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(value.split()[0]) for key, value in re.findall(r"^(VmRSS|VmHWM):\s+(.+)$", status, re.M)}


async def _submit(nc: nats.aio.client.Client, kv: KeyValue, owner: str, repo: str) -> tuple[str, float]:
    job_id = uuid.uuid4().hex
    now = time.time()
    record = JobRecord(
        job_id=job_id, status=JobStatus.QUEUED, owner=owner, repo=repo, created_at=now, updated_at=now
    )
    await kv.put(job_id, msgspec.json.encode(record))
    request = FetchRequest(job_id=job_id, owner=owner, repo=repo, requested_at=now)
    await nc.jetstream().publish(FETCH_SUBJECT, msgspec.json.encode(request), headers={"Nats-Msg-Id": job_id})
    return job_id, time.perf_counter()


async def hostile() -> None:
    cases = [
        ("GNU long name announcing 1 GiB", "longname", _huge_header(tarfile.GNUTYPE_LONGNAME)),
        ("pax header announcing 1 GiB", "pax", _huge_header(tarfile.XHDTYPE)),
        ("100,000 members with 3 KB names", "names", _many_long_names()),
        ("gzip bomb (a 3 GiB member of zeros)", "bomb", _gzip_bomb()),
        # Last: the largest peak, which the high-water mark would hide the others behind.
        ("forty 10 MiB .py files", "forty", _forty_big_files()),
    ]
    with tempfile.TemporaryDirectory() as folder, FakeGitHub.running() as github:
        for _, repo, archive in cases:
            github.add_archive("evil", repo, archive)
        with running_nats_server(Path(folder) / "js") as nats_url:
            await provision_jobs_async(nats_url)  # the analyzer's part: the fetcher only checks
            env = {"NATS_URL": nats_url, "GITHUB_API_URL": github.api_url, "LOG_LEVEL": "WARNING"}
            with service_process(
                "fetcher", env, Path(folder), port_variable="FETCHER_HEALTH_PORT"
            ) as fetcher:
                pid = fetcher.process.pid
                idle = _memory_kib(pid)["VmRSS"]
                print(f"hostile: fetcher idle RSS {idle / 1024:.0f} MiB")
                nc = await nats.connect(nats_url)
                try:
                    stores = await ensure_jetstream(nc.jetstream())
                    for what, repo, archive in cases:
                        job_id, t0 = await _submit(nc, stores.kv, "evil", repo)
                        final = await _wait_ready(stores.kv, job_id)
                        took = time.perf_counter() - t0
                        peak = _memory_kib(pid)["VmHWM"]
                        print(
                            f"  {what} ({len(archive) / 1e6:.2f} MB): {final.status} in {took:.2f} s, "
                            f"peak RSS so far {peak / 1024:.0f} MiB "
                            f"({(peak - idle) / 1024:+.0f} MiB over idle); "
                            f"{(final.error or '')[:110]}",
                            flush=True,
                        )
                finally:
                    await nc.close()


async def slow(jobs: int = 8) -> None:
    with tempfile.TemporaryDirectory() as folder, FakeGitHub.running() as github:
        github.add_repo("octo", "slow", {f"m{i}.py": f"x = {i}\n" * 200 for i in range(20)})
        github.trickle("octo", "slow", size=1, delay=0.5)
        for number in range(jobs):
            github.add_repo("octo", f"fast{number}", {"a.py": f"a = {number}\n"})
        with running_nats_server(Path(folder) / "js") as nats_url:
            await provision_jobs_async(nats_url)  # the analyzer's part: the fetcher only checks
            env = {"NATS_URL": nats_url, "GITHUB_API_URL": github.api_url, "LOG_LEVEL": "WARNING"}
            with service_process("fetcher", env, Path(folder), port_variable="FETCHER_HEALTH_PORT"):
                nc = await nats.connect(nats_url)
                try:
                    stores = await ensure_jetstream(nc.jetstream())
                    slow_id, _ = await _submit(nc, stores.kv, "octo", "slow")
                    while True:
                        entry = await stores.kv.get(slow_id)
                        record = msgspec.json.decode(entry.value or b"", type=JobRecord)
                        if record.status is JobStatus.FETCHING and record.bytes:
                            break
                        await asyncio.sleep(0.02)
                    times = []
                    for number in range(jobs):
                        job_id, t0 = await _submit(nc, stores.kv, "octo", f"fast{number}")
                        final = await _wait_ready(stores.kv, job_id)
                        times.append(time.perf_counter() - t0)
                        assert final.status is JobStatus.READY, final.error
                    entry = await stores.kv.get(slow_id)
                    still = msgspec.json.decode(entry.value or b"", type=JobRecord)
                finally:
                    await nc.close()
    times.sort()
    print(
        f"slow: {jobs} small jobs one after another while a 2 bytes/s download runs "
        f"(FETCHER_CONCURRENCY=2): publish -> ready median {times[len(times) // 2]:.2f} s, "
        f"max {times[-1]:.2f} s; the slow job meanwhile: {still.status}, {still.bytes} bytes"
    )


async def floor(rate_off: bool = False) -> None:
    """Two downloads trickling at 2 bytes/s take both slots (FETCHER_CONCURRENCY=2, every other
    setting default); a small job published once both are under way: its publish -> ready."""
    with tempfile.TemporaryDirectory() as folder, FakeGitHub.running() as github:
        for name in ("slow1", "slow2"):
            github.add_repo("octo", name, {f"m{i}.py": f"x = {i}\n" * 200 for i in range(20)})
            github.trickle("octo", name, size=1, delay=0.5)
        github.add_repo("octo", "fine", {"a.py": "a = 1\n"})
        with running_nats_server(Path(folder) / "js") as nats_url:
            await provision_jobs_async(nats_url)  # the analyzer's part: the fetcher only checks
            env = {"NATS_URL": nats_url, "GITHUB_API_URL": github.api_url, "LOG_LEVEL": "WARNING"}
            if rate_off:
                env["FETCHER_MIN_RATE_BYTES_S"] = "0"
            with service_process("fetcher", env, Path(folder), port_variable="FETCHER_HEALTH_PORT"):
                nc = await nats.connect(nats_url)
                try:
                    stores = await ensure_jetstream(nc.jetstream())
                    slow = [(await _submit(nc, stores.kv, "octo", name))[0] for name in ("slow1", "slow2")]
                    for job_id in slow:
                        while True:
                            entry = await stores.kv.get(job_id)
                            record = msgspec.json.decode(entry.value or b"", type=JobRecord)
                            if record.status is JobStatus.FETCHING and record.bytes:
                                break
                            await asyncio.sleep(0.02)
                    fine_id, t0 = await _submit(nc, stores.kv, "octo", "fine")
                    fine = await _wait_ready(stores.kv, fine_id)
                    took = time.perf_counter() - t0
                    ended = [await _wait_ready(stores.kv, job_id) for job_id in slow]
                finally:
                    await nc.close()
    print(
        f"floor ({'FETCHER_MIN_RATE_BYTES_S=0' if rate_off else 'default floor, 10 KiB/s over 30 s'}): "
        f"two 2 bytes/s downloads in both slots, then a small job: publish -> {fine.status} in "
        f"{took:.1f} s; the slow ones: {', '.join(f'{r.status} after {r.bytes} bytes' for r in ended)}; "
        f"{(ended[0].error or '')[:160]}"
    )


def main(argv: list[str]) -> None:
    runs, gz_mb = 3, 30.0
    only = {"stdlib", "hostile", "slow"}
    for arg in argv:
        if arg.startswith("--runs="):
            runs = int(arg.split("=", 1)[1])
        elif arg.startswith("--gz-mb="):
            gz_mb = float(arg.split("=", 1)[1])
        elif arg.startswith("--only="):
            only = set(arg.split("=", 1)[1].split(","))
    if "stdlib" in only:
        asyncio.run(run(runs, gz_mb))
    if "hostile" in only:
        asyncio.run(hostile())
    if "slow" in only:
        asyncio.run(slow())
    if "floor" in only:
        asyncio.run(floor())
    if "floor-off" in only:
        asyncio.run(floor(rate_off=True))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
