"""NATS names and message shapes shared by analyzer (publisher) and fetcher (consumer)."""

from __future__ import annotations

import enum
import re
from typing import Annotated

import msgspec

from servicekit.request_id import REQUEST_ID_PATTERN

# A JetStream work-queue stream holds fetch requests until one fetcher acknowledges each.
FETCH_STREAM = "CODEREVIEW_FETCH"
FETCH_SUBJECT = "codereview.fetch.requests"
FETCH_DURABLE = "codereview-fetcher"

# KV bucket: job id -> JobRecord (JSON).
JOBS_BUCKET = "jobs"
# Object Store bucket: snapshot_key(owner, repo, sha) -> encode_snapshot(...).
REPOS_BUCKET = "repos"

# Scans (analyzer only, #21): a JetStream work queue of scan starts and pieces shared by every
# analyzer's scan workers (one durable consumer), a KV bucket of scan records and piece results,
# and events codereview.scans.<scan_id>.progress|completed|failed for outside subscribers.
SCAN_STREAM = "CODEREVIEW_SCANS"
SCAN_SUBJECTS = "codereview.scan.>"
SCAN_START_SUBJECT = "codereview.scan.starts"
SCAN_PIECE_SUBJECT = "codereview.scan.pieces"
SCAN_DURABLE = "codereview-scan-workers"
SCANS_BUCKET = "scans"
SCAN_EVENTS_PREFIX = "codereview.scans"

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


# A job in one of these states never changes again.
TERMINAL = frozenset({JobStatus.READY, JobStatus.FAILED})

# The limits below are GitHub's own, so nothing GitHub accepts is refused and nothing else passes.
# msgspec applies `pattern` with re.search, hence the anchors; the end anchor is "no character
# follows", since `$` also matches before a final newline (and `\Z` is not JSON Schema's dialect).
_END = r"(?![\s\S])"
# Job ids are KV keys and subject tokens; the analyzer issues uuid4 hex.
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}" + _END
# GitHub logins (users and organisations): letters, digits, single inner hyphens, at most 39.
OWNER_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}" + _END
# Repository names: at most 100 of letters, digits, '.', '_', '-'; never "." or "..".
REPO_PATTERN = r"^(?!\.{1,2}(?![\s\S]))[A-Za-z0-9._-]{1,100}" + _END
# Git ref names: GitHub refuses branch and tag names over 255 bytes; git itself refuses control
# characters, space and ~^:?*[\ anywhere in a ref.
REF_MAX_CHARS = 255
REF_PATTERN = r"^[^\x00-\x20\x7f~^:?*\[\\]+" + _END

JobId = Annotated[str, msgspec.Meta(pattern=JOB_ID_PATTERN)]
Owner = Annotated[str, msgspec.Meta(pattern=OWNER_PATTERN)]
Repo = Annotated[str, msgspec.Meta(pattern=REPO_PATTERN)]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=REF_MAX_CHARS, pattern=REF_PATTERN)]

_JOB_ID = re.compile(JOB_ID_PATTERN)


def is_job_id(value: str) -> bool:
    """Whether `value` could be a job id (the rule JobId applies when decoding)."""
    return _JOB_ID.search(value) is not None


class FetchRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Ask a fetcher to download one repository at one ref (None: the default branch)."""

    job_id: JobId
    owner: Owner
    repo: Repo
    ref: Ref | None = None
    requested_at: float
    # The analyzer request that started the job, so the fetcher's lines name it too (absent from
    # requests of older analyzers).
    request_id: Annotated[str, msgspec.Meta(pattern=REQUEST_ID_PATTERN)] | None = None


class JobRecord(msgspec.Struct, kw_only=True):
    """The state of one job, as kept in the `jobs` KV bucket and shown by the analyzer."""

    job_id: JobId
    status: JobStatus
    owner: Owner
    repo: Repo
    ref: Ref | None = None
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


# The names of ruff's configuration files, in ruff's order of precedence within one directory: the
# fetcher keeps regular files of exactly these names (Snapshot.configs), the analyzer resolves them.
CONFIG_FILE_NAMES = (".ruff.toml", "ruff.toml", "pyproject.toml")


class Snapshot(msgspec.Struct, kw_only=True, frozen=True):
    """The Python files of one commit (path from the repository root -> raw bytes), and its lint
    configuration."""

    owner: str
    repo: str
    commit_sha: str
    files: dict[str, bytes]
    # Members left out, with the reason (too large, unsafe path, ...): path -> reason.
    skipped: dict[str, str] = {}
    # The repository's lint configuration files (pyproject.toml, ruff.toml, .ruff.toml), path ->
    # raw bytes: kept apart from `files`, which holds only Python modules. Older snapshots have none.
    configs: dict[str, bytes] = {}


def event_subject(job_id: str, event: str) -> str:
    return f"{EVENTS_PREFIX}.{job_id}.{event}"


def snapshot_key(owner: str, repo: str, commit_sha: str) -> str:
    """Object name of a commit's snapshot; the same commit always maps to the same name."""
    return f"{owner.lower()}/{repo.lower()}@{commit_sha}"


_json_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(FetchRequest)
_record_decoder = msgspec.json.Decoder(JobRecord)


def encode_json(message: FetchRequest | JobRecord | JobEvent) -> bytes:
    """The JSON bytes of a message as it goes on NATS."""
    return _json_encoder.encode(message)


def decode_fetch_request(data: bytes) -> FetchRequest:
    """Decode and check a fetch request; raises msgspec.DecodeError (a ValidationError names the field)."""
    return _request_decoder.decode(data)


def decode_job_record(data: bytes) -> JobRecord:
    """Decode and check a job record from the `jobs` bucket; raises msgspec.DecodeError."""
    return _record_decoder.decode(data)


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return _snapshot_encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    """Decode a stored snapshot; raises msgspec.DecodeError if the bytes are not one."""
    return _snapshot_decoder.decode(data)
