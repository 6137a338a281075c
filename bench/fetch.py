"""Fetch a stdlib-sized repository: from publishing the FetchRequest to the job being ready.

The repository is this machine's Python standard library (about 1,800 .py files), padded with
non-Python files up to about 30 MB gzipped, like a CPython source tarball; the fake GitHub
serves it on loopback, a real nats-server holds the work queue, KV and Object Store, and the
fetcher runs as its own process (`python -m fetcher`), as deployed.

Figures: publish -> ready as the analyzer sees it (KV), and the fetcher's own split of that
into download time and download end -> ready (the issue's target: <= 1.5 s on 2 cores).
Usage: python -m bench fetch [--runs=N] [--gz-mb=30]
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
from pathlib import Path

import msgspec
import nats
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from fetcher.archive import INFLATE_ENGINE
from jobs_contract import FETCH_SUBJECT, FetchRequest, JobRecord, JobStatus, ensure_jetstream
from tests.support.fake_github import FakeGitHub, files_from_folder, make_sha
from tests.support.nats import running_nats_server
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


def main(argv: list[str]) -> None:
    runs, gz_mb = 3, 30.0
    for arg in argv:
        if arg.startswith("--runs="):
            runs = int(arg.split("=", 1)[1])
        elif arg.startswith("--gz-mb="):
            gz_mb = float(arg.split("=", 1)[1])
    asyncio.run(run(runs, gz_mb))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
