"""Create (or open) the JetStream stream and buckets both sides use, with one configuration.

Analyzer and fetcher both call `ensure_jetstream` at start-up, so either may start first; the
server treats a create with an identical configuration as a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from jobs_contract.messages import FETCH_STREAM, FETCH_SUBJECT, JOBS_BUCKET, REPOS_BUCKET

# A re-published request with the same Nats-Msg-Id (the job id) inside this window is dropped.
FETCH_DUPLICATE_WINDOW_S = 600.0


@dataclass(frozen=True)
class JobStores:
    kv: KeyValue
    repos: ObjectStore


def fetch_stream_config() -> StreamConfig:
    return StreamConfig(
        name=FETCH_STREAM,
        subjects=[FETCH_SUBJECT],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=FETCH_DUPLICATE_WINDOW_S,
    )


async def ensure_jetstream(js: JetStreamContext) -> JobStores:
    """Create the fetch work queue, the `jobs` KV bucket and the `repos` Object Store if missing."""
    await js.add_stream(fetch_stream_config())
    kv = await js.create_key_value(bucket=JOBS_BUCKET, history=1, storage=StorageType.FILE)
    repos = await js.create_object_store(bucket=REPOS_BUCKET, storage=StorageType.FILE)
    return JobStores(kv=kv, repos=repos)
