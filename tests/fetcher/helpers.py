"""Drive the fetcher as the analyzer does: write the queued JobRecord, publish the FetchRequest."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError

from fetcher.app import create_app
from fetcher.settings import Settings
from jobs_contract import (
    EVENT_COMPLETED,
    EVENT_FAILED,
    EVENTS_PREFIX,
    FETCH_SUBJECT,
    TERMINAL,
    FetchRequest,
    JobEvent,
    JobRecord,
    JobStatus,
    JobStores,
    Snapshot,
    decode_snapshot,
    ensure_jetstream,
)


def fetcher_settings(nats_url: str, github_api_url: str, **overrides: Any) -> Settings:
    """Settings for a fetcher under test: no HTTP side, short waits, no .env."""
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "github_api_url": github_api_url,
        "github_token": None,
        "fetcher_health_port": 0,
        "fetcher_ack_wait_s": 5.0,
        "fetcher_max_deliveries": 3,
        "fetcher_retry_backoff_s": 0.05,
        "fetcher_progress_interval_s": 0.0,
        "fetcher_rate_limit_max_wait_s": 5.0,
        "fetcher_http_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running_fetcher(settings: Settings) -> AsyncIterator[None]:
    """The fetcher app (broker, subscribers, lifespan) running in this event loop.

    It runs in a task of its own: FastStream's lifespan holds anyio cancel scopes, which must be
    left by the task that entered them (a pytest fixture's set-up and tear-down are two tasks).
    """
    app = create_app(settings, configure_logging=False)
    started = asyncio.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with app.start_lifespan_context():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises what made start-up fail
    try:
        yield
    finally:
        stop.set()
        await task


@dataclass
class Analyzer:
    """The analyzer's side of the contract, and a recorder of every job event."""

    nc: NatsClient
    stores: JobStores
    events: list[tuple[str, JobEvent]] = field(default_factory=list)

    async def submit(
        self, owner: str, repo: str, ref: str | None = None, *, job_id: str | None = None
    ) -> str:
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        record = JobRecord(
            job_id=job_id,
            status=JobStatus.QUEUED,
            owner=owner,
            repo=repo,
            ref=ref,
            created_at=now,
            updated_at=now,
        )
        await self.stores.kv.put(job_id, msgspec.json.encode(record))
        request = FetchRequest(job_id=job_id, owner=owner, repo=repo, ref=ref, requested_at=now)
        await self.publish_raw(msgspec.json.encode(request), msg_id=job_id)
        return job_id

    async def publish_raw(self, body: bytes, *, msg_id: str) -> None:
        await self.nc.jetstream().publish(FETCH_SUBJECT, body, headers={"Nats-Msg-Id": msg_id})

    async def record(self, job_id: str) -> JobRecord:
        entry = await self.stores.kv.get(job_id)
        return msgspec.json.decode(entry.value or b"", type=JobRecord)

    async def wait(self, job_id: str, timeout: float = 60.0) -> JobRecord:
        """The job's record once it is ready or failed (the bound only keeps a broken run finite)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(KeyNotFoundError):
                record = await self.record(job_id)
                if record.status in TERMINAL:
                    await self._event_arrived(job_id, record.status)
                    return record
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job_id} not finished within {timeout} s: {await self.record(job_id)}")

    async def _event_arrived(self, job_id: str, status: JobStatus, within_s: float = 5.0) -> None:
        """The job's completed/failed event follows its KV write: give it time to arrive, so tests
        that count events see it (and a missing one still shows, as a count of zero)."""
        event = EVENT_COMPLETED if status is JobStatus.READY else EVENT_FAILED
        deadline = time.monotonic() + within_s
        while not self.events_for(job_id, event) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def snapshot(self, key: str) -> Snapshot:
        result = await self.stores.repos.get(key)
        return decode_snapshot(result.data or b"")

    def events_for(self, job_id: str, event: str | None = None) -> list[JobEvent]:
        return [e for subject, e in self.events if e.job_id == job_id and (event is None or e.event == event)]


@asynccontextmanager
async def analyzer(nats_url: str) -> AsyncIterator[Analyzer]:
    nc = await nats.connect(nats_url)
    try:
        side = Analyzer(nc=nc, stores=await ensure_jetstream(nc.jetstream()))

        async def record_event(msg: Msg) -> None:
            side.events.append((msg.subject, msgspec.json.decode(msg.data, type=JobEvent)))

        await nc.subscribe(f"{EVENTS_PREFIX}.>", cb=record_event)
        yield side
    finally:
        await nc.drain()


# -- hostile archives ---------------------------------------------------------------------------


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], pax_comment: str | None = None) -> bytes:
    """An uncompressed tar of these members (data None: no data), with an optional pax comment."""
    buffer = io.BytesIO()
    pax = {"comment": pax_comment} if pax_comment else {}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, pax_headers=pax) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, *, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.linkname = linkname
    return info


def raw_header(name: str, size: int) -> bytes:
    """One ustar header block for a regular file of `size` bytes (the data is up to the caller)."""
    info = member(name)
    info.size = size
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def raw_member(name: str, data: bytes) -> bytes:
    """A header and its data, padded to whole blocks: concatenate these to build a tar by hand."""
    padding = -len(data) % tarfile.BLOCKSIZE
    return raw_header(name, len(data)) + data + b"\0" * padding


def gzip_bytes(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def repeated_gzip(block: bytes, times: int, head: bytes = b"") -> bytes:
    """gzip of head + block * times without compressing it all: a full flush makes the
    compressed block independent of what came before, so its bytes can simply be repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    # The trailer: crc32 and length of everything, as gzip requires.
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    size = (len(head) + len(block) * times) & 0xFFFFFFFF
    end = compressor.flush(zlib.Z_FINISH)
    # `end` holds the empty final block plus the trailer of the compressor's own (shorter) input.
    final_block = end[: len(end) - 8]
    return start + body * times + final_block + crc.to_bytes(4, "little") + size.to_bytes(4, "little")
