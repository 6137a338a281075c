"""Create (or open) the JetStream stream and buckets both sides use, with one configuration.

Analyzer and fetcher both call `ensure_jetstream` at start-up, so either may start first; the
server treats a create with an identical configuration as a no-op, and a stream or bucket made
with other limits or another number of replicas (an older release, other settings) is updated to
these, with a warning that names what changed. When NATS refuses the change (three replicas on a
single server, a cluster too small) the start fails with JetStreamSetupError saying what differs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, ServiceUnavailableError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from jobs_contract.messages import (
    FETCH_STREAM,
    FETCH_SUBJECT,
    JOBS_BUCKET,
    REPOS_BUCKET,
    SCAN_STREAM,
    SCAN_SUBJECTS,
    SCANS_BUCKET,
)
from jobs_contract.settings import StorageSettings

# A re-published request with the same Nats-Msg-Id (the job id) inside this window is dropped.
FETCH_DUPLICATE_WINDOW_S = 600.0
# JetStream's error code for "stream name already in use with a different configuration".
_STREAM_CONFIG_DIFFERS = 10058
# JetStream's error code for a write past a stream's max messages or max bytes (discard "new"):
# "maximum messages exceeded", "maximum bytes exceeded".
STREAM_FULL = 10077

_Bucket = TypeVar("_Bucket", KeyValue, ObjectStore, None)

log = logging.getLogger("jobs_contract.jetstream")


class JetStreamSetupError(RuntimeError):
    """NATS refused to create a stream or bucket, or to change an existing one to our settings.

    The message names the stream, what differs (as the environment variables that set it) and
    the server's reason; nothing was changed.
    """


@dataclass(frozen=True)
class JobStores:
    kv: KeyValue
    repos: ObjectStore


def fetch_stream_config(replicas: int = 1, *, max_msgs: int) -> StreamConfig:
    """The fetch work queue: at most `max_msgs` requests (FETCH_QUEUE_MAX_MSGS); a publish past
    that is refused (`stream_full` says so) rather than dropping the oldest request, a job."""
    return StreamConfig(
        name=FETCH_STREAM,
        subjects=[FETCH_SUBJECT],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=FETCH_DUPLICATE_WINDOW_S,
        num_replicas=replicas,
        max_msgs=max_msgs,
        discard=DiscardPolicy.NEW,
    )


def stream_full(error: BaseException) -> TypeGuard[APIError]:
    """Whether a publish or put failed because the stream is at its max messages or max bytes
    (discard "new"): waiting for room may help, retrying at once will not."""
    return isinstance(error, APIError) and error.err_code == STREAM_FULL


async def ensure_jetstream(js: JetStreamContext, storage: StorageSettings | None = None) -> JobStores:
    """Create the fetch work queue, the `jobs` KV bucket and the `repos` Object Store if missing.

    Each gets NATS_REPLICAS replicas, the queue at most FETCH_QUEUE_MAX_MSGS requests, and the
    buckets the max age and max bytes of `storage`
    (default: read from the environment); existing ones are updated to these. Raises
    JetStreamSetupError when NATS refuses a setting, nats errors when it does not answer.
    """
    limits = storage or StorageSettings()
    replicas = limits.nats_replicas
    queue = fetch_stream_config(replicas, max_msgs=limits.fetch_queue_max_msgs)
    await _create_or_update(
        js,
        FETCH_STREAM,
        lambda: _no_bucket(js.add_stream(queue)),
        lambda: _no_bucket(js.stream_info(FETCH_STREAM)),
        {
            "num_replicas": ("NATS_REPLICAS", replicas),
            "max_msgs": ("FETCH_QUEUE_MAX_MSGS", limits.fetch_queue_max_msgs),
            # A queue made by an older release discards "old": bounded, it would drop its oldest
            # request (someone's job) to take a new one.
            "discard": ("discard", DiscardPolicy.NEW.value),
        },
    )
    kv = await _create_or_update(
        js,
        f"KV_{JOBS_BUCKET}",
        lambda: js.create_key_value(
            bucket=JOBS_BUCKET,
            history=1,
            storage=StorageType.FILE,
            ttl=limits.jobs_max_age_s,
            max_bytes=limits.jobs_max_bytes,
            replicas=replicas,
        ),
        lambda: js.key_value(JOBS_BUCKET),
        {
            "num_replicas": ("NATS_REPLICAS", replicas),
            "max_age": ("JOBS_MAX_AGE_S", limits.jobs_max_age_s),
            "max_bytes": ("JOBS_MAX_BYTES", limits.jobs_max_bytes),
        },
    )
    repos = await _create_or_update(
        js,
        f"OBJ_{REPOS_BUCKET}",
        lambda: js.create_object_store(
            bucket=REPOS_BUCKET,
            storage=StorageType.FILE,
            ttl=limits.repos_max_age_s,
            max_bytes=limits.repos_max_bytes,
            replicas=replicas,
        ),
        lambda: js.object_store(REPOS_BUCKET),
        {
            "num_replicas": ("NATS_REPLICAS", replicas),
            "max_age": ("REPOS_MAX_AGE_S", limits.repos_max_age_s),
            "max_bytes": ("REPOS_MAX_BYTES", limits.repos_max_bytes),
        },
    )
    return JobStores(kv=kv, repos=repos)


async def _no_bucket(call: Awaitable[Any]) -> None:
    await call


async def _create_or_update(
    js: JetStreamContext,
    stream: str,
    create: Callable[[], Awaitable[_Bucket]],
    bind: Callable[[], Awaitable[_Bucket]],
    wanted: Mapping[str, tuple[str, Any]],
) -> _Bucket:
    """`wanted` maps StreamConfig fields to (the variable that sets it, its value)."""
    try:
        return await create()
    except APIError as error:
        # ServiceUnavailableError is an APIError too, but a passing state (no leader yet), not a refusal.
        if isinstance(error, ServiceUnavailableError):
            raise
        if not (isinstance(error, BadRequestError) and error.err_code == _STREAM_CONFIG_DIFFERS):
            raise JetStreamSetupError(await _refusal(js, stream, wanted, error)) from error
    config = (await js.stream_info(stream)).config
    current = {field: getattr(config, field) for field in wanted}
    differs = {field: value for field, (_, value) in wanted.items() if current[field] != value}
    for field, value in differs.items():
        setattr(config, field, value)
    # The server refuses a duplicate window longer than the max age (KV buckets have 2 minutes).
    if config.duplicate_window and config.max_age:
        config.duplicate_window = min(config.duplicate_window, config.max_age)
    try:
        await js.update_stream(config)
    except APIError as error:
        raise JetStreamSetupError(
            f"the stream {stream} exists with {_describe(current, wanted, only=differs)}, "
            f"this service asks for {_describe(differs, wanted)}, and NATS refused the change: "
            f"{error.description}; set the same values as the service that created it, or "
            "change the stream with the nats CLI"
        ) from error
    if differs:
        log.warning(
            "the stream %s had %s: changed to %s",
            stream,
            _describe(current, wanted, only=differs),
            _describe(differs, wanted),
        )
    return await bind()


async def _refusal(
    js: JetStreamContext, stream: str, wanted: Mapping[str, tuple[str, Any]], error: APIError
) -> str:
    asked = _describe({field: value for field, (_, value) in wanted.items()}, wanted)
    try:
        config = (await js.stream_info(stream)).config
    except (TimeoutError, NatsError):  # missing, or NATS cannot say: the refusal is the news
        return f"NATS refused to create the stream {stream} with {asked}: {error.description}"
    current = {field: getattr(config, field) for field in wanted}
    return (
        f"the stream {stream} exists with {_describe(current, wanted)}, this service asks for "
        f"{asked}, and NATS refused: {error.description}"
    )


def _describe(
    values: Mapping[str, Any], wanted: Mapping[str, tuple[str, Any]], only: Mapping[str, Any] | None = None
) -> str:
    """`NATS_REPLICAS=3, JOBS_MAX_AGE_S=604800`: the fields as the variables that set them."""
    return ", ".join(
        f"{wanted[field][0]}={value:g}" if isinstance(value, float) else f"{wanted[field][0]}={value}"
        for field, value in values.items()
        if only is None or field in only
    )


# A scan message re-published with the same Nats-Msg-Id (`<scan_id>.start`, `<scan_id>.<index>`)
# inside this window is dropped: a cut retried after a worker died queues no piece twice.
SCAN_DUPLICATE_WINDOW_S = 600.0


@dataclass(frozen=True)
class ScanLimits:
    """What the scan queue and the `scans` bucket keep (the analyzer's ANALYZER_SCAN_* settings)."""

    queue_max_msgs: int
    queue_max_bytes: int
    queue_max_age_s: float
    bucket_max_bytes: int
    bucket_max_age_s: float
    replicas: int = 1


def scan_stream_config(limits: ScanLimits) -> StreamConfig:
    """The scan work queue: starts and pieces until a worker acknowledges each; bounded in count,
    bytes and age, and a publish past the bounds is refused (discard "new"), never a queued piece dropped."""
    return StreamConfig(
        name=SCAN_STREAM,
        subjects=[SCAN_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=min(SCAN_DUPLICATE_WINDOW_S, limits.queue_max_age_s),
        num_replicas=limits.replicas,
        max_msgs=limits.queue_max_msgs,
        max_bytes=limits.queue_max_bytes,
        max_age=limits.queue_max_age_s,
        discard=DiscardPolicy.NEW,
    )


async def ensure_scan_jetstream(js: JetStreamContext, limits: ScanLimits) -> KeyValue:
    """Create (or update to `limits`) the scan work queue and the `scans` KV bucket; returns the
    bucket. Raises JetStreamSetupError when NATS refuses a setting, nats errors when it does not answer."""
    queue = scan_stream_config(limits)
    await _create_or_update(
        js,
        SCAN_STREAM,
        lambda: _no_bucket(js.add_stream(queue)),
        lambda: _no_bucket(js.stream_info(SCAN_STREAM)),
        {
            "num_replicas": ("NATS_REPLICAS", limits.replicas),
            "max_msgs": ("ANALYZER_SCAN_QUEUE_MAX_MSGS", limits.queue_max_msgs),
            "max_bytes": ("ANALYZER_SCAN_QUEUE_MAX_BYTES", limits.queue_max_bytes),
            "max_age": ("ANALYZER_SCAN_QUEUE_MAX_AGE_S", limits.queue_max_age_s),
        },
    )
    return await _create_or_update(
        js,
        f"KV_{SCANS_BUCKET}",
        lambda: js.create_key_value(
            bucket=SCANS_BUCKET,
            history=1,
            storage=StorageType.FILE,
            ttl=limits.bucket_max_age_s,
            max_bytes=limits.bucket_max_bytes,
            replicas=limits.replicas,
        ),
        lambda: js.key_value(SCANS_BUCKET),
        {
            "num_replicas": ("NATS_REPLICAS", limits.replicas),
            "max_age": ("ANALYZER_SCANS_MAX_AGE_S", limits.bucket_max_age_s),
            "max_bytes": ("ANALYZER_SCANS_MAX_BYTES", limits.bucket_max_bytes),
        },
    )
