"""NATS names and message shapes shared by analyzer (publisher) and fetcher (consumer)."""

from __future__ import annotations

import enum

import msgspec

# A JetStream work-queue stream holds fetch requests until one fetcher acknowledges each.
FETCH_STREAM = "CODEREVIEW_FETCH"
FETCH_SUBJECT = "codereview.fetch.requests"
FETCH_DURABLE = "codereview-fetcher"

# KV bucket: job id -> JobRecord (JSON).
JOBS_BUCKET = "jobs"
# Object Store bucket: snapshot_key(owner, repo, sha) -> encode_snapshot(...).
REPOS_BUCKET = "repos"

# Events for outside subscribers: codereview.jobs.<job_id>.<event>.
EVENTS_PREFIX = "codereview.jobs"
EVENT_PROGRESS = "progress"
EVENT_COMPLETED = "completed"
EVENT_FAILED = "failed"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    FETCHING = "fetching"
    READY = "ready"
    FAILED = "failed"


class FetchRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Ask a fetcher to download one repository at one ref (None: the default branch)."""

    job_id: str
    owner: str
    repo: str
    ref: str | None = None
    requested_at: float


class JobRecord(msgspec.Struct, kw_only=True):
    """The state of one job, as kept in the `jobs` KV bucket and shown by the analyzer."""

    job_id: str
    status: JobStatus
    owner: str
    repo: str
    ref: str | None = None
    commit_sha: str | None = None
    # Object Store key of the stored snapshot, once ready.
    snapshot: str | None = None
    files: int = 0
    bytes: int = 0
    # 0.0 .. 1.0; an estimate while fetching (bytes received of the announced size, if any).
    progress: float = 0.0
    error: str | None = None
    created_at: float
    updated_at: float


class JobEvent(msgspec.Struct, kw_only=True, frozen=True):
    """Published on event_subject(job_id, event) for outside subscribers."""

    job_id: str
    event: str
    status: JobStatus
    progress: float = 0.0
    files: int = 0
    bytes: int = 0
    commit_sha: str | None = None
    error: str | None = None
    at: float


class Snapshot(msgspec.Struct, kw_only=True, frozen=True):
    """The Python files of one commit: path from the repository root -> raw bytes."""

    owner: str
    repo: str
    commit_sha: str
    files: dict[str, bytes]
    # Members left out, with the reason (too large, unsafe path, ...): path -> reason.
    skipped: dict[str, str] = {}


def event_subject(job_id: str, event: str) -> str:
    return f"{EVENTS_PREFIX}.{job_id}.{event}"


def snapshot_key(owner: str, repo: str, commit_sha: str) -> str:
    """Object name of a commit's snapshot; the same commit always maps to the same name."""
    return f"{owner.lower()}/{repo.lower()}@{commit_sha}"


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return _snapshot_encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    """Decode a stored snapshot; raises msgspec.DecodeError if the bytes are not one."""
    return _snapshot_decoder.decode(data)
