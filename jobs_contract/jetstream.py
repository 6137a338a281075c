"""Create (or open) the JetStream stream and buckets both sides use, with one configuration.

Analyzer and fetcher both call `ensure_jetstream` at start-up, so either may start first; the
server treats a create with an identical configuration as a no-op, and a bucket made with other
limits (an older release, other settings) is updated to these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from jobs_contract.messages import (
    FETCH_STREAM,
    FETCH_SUBJECT,
    JOBS_BUCKET,
    REPOS_BUCKET,
    Snapshot,
    decode_snapshot,
)
from jobs_contract.settings import StorageSettings

# A re-published request with the same Nats-Msg-Id (the job id) inside this window is dropped.
FETCH_DUPLICATE_WINDOW_S = 600.0
# JetStream's error code for "stream name already in use with a different configuration".
_STREAM_CONFIG_DIFFERS = 10058

_Bucket = TypeVar("_Bucket", KeyValue, ObjectStore)


@dataclass(frozen=True)
class JobStores:
    kv: KeyValue
    repos: ObjectStore


class SnapshotGone(LookupError):  # noqa: N818 - a state, like KeyError
    """The snapshot a ready job names is no longer stored (REPOS_MAX_AGE_S passed, or it was deleted).

    The job's files are gone, not broken: answer "gone" (HTTP 410) or fetch the repository again.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"the snapshot {key} is no longer stored (REPOS_MAX_AGE_S); start a new job")


def fetch_stream_config() -> StreamConfig:
    return StreamConfig(
        name=FETCH_STREAM,
        subjects=[FETCH_SUBJECT],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=FETCH_DUPLICATE_WINDOW_S,
    )


async def ensure_jetstream(js: JetStreamContext, storage: StorageSettings | None = None) -> JobStores:
    """Create the fetch work queue, the `jobs` KV bucket and the `repos` Object Store if missing.

    The buckets get the max age and max bytes of `storage` (default: read from the environment).
    Raises nats errors when NATS refuses or does not answer.
    """
    limits = storage or StorageSettings()
    await js.add_stream(fetch_stream_config())
    kv = await _create_or_update(
        js,
        f"KV_{JOBS_BUCKET}",
        lambda: js.create_key_value(
            bucket=JOBS_BUCKET,
            history=1,
            storage=StorageType.FILE,
            ttl=limits.jobs_max_age_s,
            max_bytes=limits.jobs_max_bytes,
        ),
        lambda: js.key_value(JOBS_BUCKET),
        limits.jobs_max_age_s,
        limits.jobs_max_bytes,
    )
    repos = await _create_or_update(
        js,
        f"OBJ_{REPOS_BUCKET}",
        lambda: js.create_object_store(
            bucket=REPOS_BUCKET,
            storage=StorageType.FILE,
            ttl=limits.repos_max_age_s,
            max_bytes=limits.repos_max_bytes,
        ),
        lambda: js.object_store(REPOS_BUCKET),
        limits.repos_max_age_s,
        limits.repos_max_bytes,
    )
    return JobStores(kv=kv, repos=repos)


async def _create_or_update(
    js: JetStreamContext,
    stream: str,
    create: Callable[[], Awaitable[_Bucket]],
    bind: Callable[[], Awaitable[_Bucket]],
    max_age_s: float,
    max_bytes: int,
) -> _Bucket:
    try:
        return await create()
    except BadRequestError as error:
        if error.err_code != _STREAM_CONFIG_DIFFERS:
            raise
    config = (await js.stream_info(stream)).config
    config.max_age = max_age_s
    config.max_bytes = max_bytes
    # The server refuses a duplicate window longer than the max age (KV buckets have 2 minutes).
    if config.duplicate_window:
        config.duplicate_window = min(config.duplicate_window, max_age_s)
    await js.update_stream(config)
    return await bind()


async def load_snapshot(repos: ObjectStore, key: str) -> Snapshot:
    """The stored snapshot `key`. Raises SnapshotGone when it is no longer stored (expired or
    deleted), msgspec.DecodeError when the object is not a snapshot, nats errors on NATS trouble."""
    try:
        result = await repos.get(key)
    except ObjectNotFoundError as error:
        raise SnapshotGone(key) from error
    return decode_snapshot(result.data or b"")
