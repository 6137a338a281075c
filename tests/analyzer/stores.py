"""Put jobs and snapshots straight into NATS, as a fetcher would, where the fetcher is not the point."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import msgspec
import nats

from jobs_contract import (
    JobRecord,
    JobStatus,
    JobStores,
    Snapshot,
    encode_snapshot,
    ensure_jetstream,
    snapshot_key,
)


@asynccontextmanager
async def job_stores(nats_url: str) -> AsyncIterator[JobStores]:
    client = await nats.connect(nats_url)
    try:
        yield await ensure_jetstream(client.jetstream())
    finally:
        await client.close()


async def put_job(stores: JobStores, record: JobRecord) -> None:
    await stores.kv.put(record.job_id, msgspec.json.encode(record))


def job_record(
    status: JobStatus,
    *,
    job_id: str | None = None,
    owner: str = "octo",
    repo: str = "demo",
    sha: str | None = None,
    snapshot: str | None = None,
    error: str | None = None,
) -> JobRecord:
    now = time.time()
    return JobRecord(
        job_id=job_id or uuid.uuid4().hex,
        status=status,
        owner=owner,
        repo=repo,
        commit_sha=sha,
        snapshot=snapshot,
        error=error,
        created_at=now,
        updated_at=now,
    )


async def put_ready_job(
    stores: JobStores,
    files: Mapping[str, str | bytes],
    *,
    owner: str = "octo",
    repo: str = "demo",
    sha: str | None = None,
    configs: Mapping[str, str] | None = None,
) -> JobRecord:
    """Store `files` (and lint `configs`) as a snapshot and a ready job pointing at it; returns the record."""
    sha = sha or uuid.uuid4().hex + "00000000"
    content = {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}
    kept = {path: text.encode() for path, text in (configs or {}).items()}
    key = snapshot_key(owner, repo, sha)
    await stores.repos.put(
        key, encode_snapshot(Snapshot(owner=owner, repo=repo, commit_sha=sha, files=content, configs=kept))
    )
    record = job_record(JobStatus.READY, owner=owner, repo=repo, sha=sha, snapshot=key)
    record = msgspec.structs.replace(
        record, files=len(content), bytes=sum(map(len, content.values())), progress=1.0
    )
    await put_job(stores, record)
    return record
