"""The contract between analyzer and fetcher: NATS names and the messages they exchange.

Both services import this package and nothing else of each other. Everything that crosses
NATS is one of the msgspec structs below, encoded as JSON (readable with `nats` CLI tools),
except snapshots, which are msgpack (they hold file bytes).
"""

from jobs_contract.jetstream import FETCH_DUPLICATE_WINDOW_S, JobStores, ensure_jetstream, fetch_stream_config
from jobs_contract.messages import (
    EVENT_COMPLETED,
    EVENT_FAILED,
    EVENT_PROGRESS,
    EVENTS_PREFIX,
    FETCH_DURABLE,
    FETCH_STREAM,
    FETCH_SUBJECT,
    JOBS_BUCKET,
    REPOS_BUCKET,
    FetchRequest,
    JobEvent,
    JobRecord,
    JobStatus,
    Snapshot,
    decode_snapshot,
    encode_snapshot,
    event_subject,
    snapshot_key,
)

__all__ = [
    "EVENTS_PREFIX",
    "EVENT_COMPLETED",
    "EVENT_FAILED",
    "EVENT_PROGRESS",
    "FETCH_DUPLICATE_WINDOW_S",
    "FETCH_DURABLE",
    "FETCH_STREAM",
    "FETCH_SUBJECT",
    "JOBS_BUCKET",
    "REPOS_BUCKET",
    "FetchRequest",
    "JobEvent",
    "JobRecord",
    "JobStatus",
    "JobStores",
    "Snapshot",
    "decode_snapshot",
    "encode_snapshot",
    "ensure_jetstream",
    "event_subject",
    "fetch_stream_config",
    "snapshot_key",
]
