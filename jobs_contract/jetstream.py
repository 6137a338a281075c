"""The JetStream streams and buckets of jobs, as data (StreamSpec), and the one service that keeps them.

The analyzer provisions (`ensure_jetstream`, or `provision` with any list of specs): it creates
what is missing and updates limits (replicas, max age, max bytes, max messages, discard) that
differ from its settings, with a warning naming what changed; NATS makes these changes in place
and keeps the data (raising replicas copies it to the new peers). A stream whose structure
differs (subjects, retention, storage) was not made by codereview and is refused, never changed.
When NATS refuses a change (three replicas on a single server) the start fails with
JetStreamSetupError saying what differs. The fetcher only checks (`await_jetstream`): what it
needs exists with that structure, waiting NATS_START_WAIT_S for the analyzer, then NotProvisioned
naming the missing stream and who creates it. New streams (the scan's) are more StreamSpecs in
a function of their own, provisioned in the same call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeGuard

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError
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

# The one service that creates and updates the streams and buckets below; the others check.
PROVISIONER = "analyzer"

log = logging.getLogger("jobs_contract.jetstream")


class NotProvisioned(RuntimeError):  # noqa: N818 - named for what the operator meets
    """A stream or bucket this service needs does not exist (yet): the message names it and who creates it."""


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


@dataclass(frozen=True)
class StreamSpec:
    """One stream or bucket that the provisioning service (the analyzer) keeps and others use.

    `create` makes it (or returns the existing one when its configuration is the same);
    `limits` are the StreamConfig fields NATS changes in place, mapped to (the variable that sets
    it, its value): the owner updates a stream to these; `structure` are the fields every user
    relies on (subjects, retention, storage): a stream that differs there was not made by
    codereview, and is refused rather than changed. More streams (the scan's) are more specs.
    """

    stream: str
    create: Callable[[JetStreamContext], Awaitable[object]]
    limits: Mapping[str, tuple[str, Any]]
    structure: Mapping[str, Any]


def kv_spec(
    bucket: str, *, replicas: int, max_age: tuple[str, float], max_bytes: tuple[str, int]
) -> StreamSpec:
    """A KV bucket keeping one value a key on file: `max_age` and `max_bytes` as (the variable
    that sets it, its value)."""
    return StreamSpec(
        stream=f"KV_{bucket}",
        create=lambda js: js.create_key_value(
            bucket=bucket,
            history=1,
            storage=StorageType.FILE,
            ttl=max_age[1],
            max_bytes=max_bytes[1],
            replicas=replicas,
        ),
        limits={"num_replicas": ("NATS_REPLICAS", replicas), "max_age": max_age, "max_bytes": max_bytes},
        structure={"subjects": [f"$KV.{bucket}.>"], "storage": StorageType.FILE.value},
    )


def job_specs(storage: StorageSettings | None = None) -> list[StreamSpec]:
    """The fetch work queue, the `jobs` KV bucket and the `repos` Object Store, with NATS_REPLICAS
    replicas, the queue at most FETCH_QUEUE_MAX_MSGS requests, the buckets the max age and max
    bytes of `storage` (default: read from the environment)."""
    limits = storage or StorageSettings()
    replicas = limits.nats_replicas
    queue = fetch_stream_config(replicas, max_msgs=limits.fetch_queue_max_msgs)
    return [
        StreamSpec(
            stream=FETCH_STREAM,
            create=lambda js: js.add_stream(queue),
            limits={
                "num_replicas": ("NATS_REPLICAS", replicas),
                "max_msgs": ("FETCH_QUEUE_MAX_MSGS", limits.fetch_queue_max_msgs),
                # A queue made by an older release discards "old": bounded, it would drop its
                # oldest request (someone's job) to take a new one.
                "discard": ("discard", DiscardPolicy.NEW.value),
            },
            structure={
                "subjects": [FETCH_SUBJECT],
                "retention": RetentionPolicy.WORK_QUEUE.value,
                "storage": StorageType.FILE.value,
            },
        ),
        kv_spec(
            JOBS_BUCKET,
            replicas=replicas,
            max_age=("JOBS_MAX_AGE_S", limits.jobs_max_age_s),
            max_bytes=("JOBS_MAX_BYTES", limits.jobs_max_bytes),
        ),
        StreamSpec(
            stream=f"OBJ_{REPOS_BUCKET}",
            create=lambda js: js.create_object_store(
                bucket=REPOS_BUCKET,
                storage=StorageType.FILE,
                ttl=limits.repos_max_age_s,
                max_bytes=limits.repos_max_bytes,
                replicas=replicas,
            ),
            limits={
                "num_replicas": ("NATS_REPLICAS", replicas),
                "max_age": ("REPOS_MAX_AGE_S", limits.repos_max_age_s),
                "max_bytes": ("REPOS_MAX_BYTES", limits.repos_max_bytes),
            },
            structure={
                "subjects": [f"$O.{REPOS_BUCKET}.C.>", f"$O.{REPOS_BUCKET}.M.>"],
                "storage": StorageType.FILE.value,
            },
        ),
    ]


async def provision(
    js: JetStreamContext, specs: Sequence[StreamSpec], *, migration_hint: bool = True
) -> None:
    """The owner's start: create each stream or bucket of `specs` if missing, update its limits
    where they differ (a warning names what changed), refuse one whose structure differs.
    `migration_hint`: when every one was created, say where an earlier server's data went (the
    jobs' streams; the scans' hold nothing worth carrying over).

    Raises JetStreamSetupError when a stream's structure differs or NATS refuses a setting
    (three replicas on a single server), nats errors when it does not answer.
    """
    created = []
    for spec in specs:
        if await _create_or_update(js, spec):
            created.append(spec.stream)
    if migration_hint and created and len(created) == len(specs):
        replicas = (await js.stream_info(created[0])).config.num_replicas or 1
        # On a cluster, say where the data of an earlier single server went; a single server
        # made anew is a first start.
        log.log(
            logging.WARNING if replicas > 1 else logging.INFO,
            "created the streams %s, empty, with %d replica(s). If this NATS replaces another (a "
            "single server moved to a cluster), the old one's jobs and snapshots are not here: "
            "nats-server does not carry a single server's streams into a cluster. Copy them with "
            "`python -m jobs_contract.migrate --source OLD_URL --target NEW_URL` (docs/operations.md)",
            ", ".join(created),
            replicas,
        )


async def check_provisioned(
    js: JetStreamContext, specs: Sequence[StreamSpec], *, owner: str = PROVISIONER
) -> None:
    """Another service's start: every stream of `specs` exists with the structure it relies on.

    Limits that differ from this service's environment are only logged (the owner's apply).
    Raises NotProvisioned naming the first missing stream and who creates it (worth waiting
    for: the owner may still be starting), JetStreamSetupError when one has another structure.
    """
    for spec in specs:
        try:
            config = (await js.stream_info(spec.stream)).config
        except NotFoundError as exc:
            raise NotProvisioned(
                f"the stream {spec.stream} does not exist: the {owner} creates it at its start "
                f"(is an {owner} running against this NATS, with the same NATS_URL?)"
            ) from exc
        _check_structure(spec, config, owner)
        current = {field: getattr(config, field) for field in spec.limits}
        differs = {field: value for field, (_, value) in spec.limits.items() if current[field] != value}
        if differs:
            log.warning(
                "the stream %s has %s (the %s keeps it so); this service's environment says %s: "
                "set the same values for every service",
                spec.stream,
                _describe(current, spec.limits, only=differs),
                owner,
                _describe(differs, spec.limits),
            )


async def ensure_jetstream(js: JetStreamContext, storage: StorageSettings | None = None) -> JobStores:
    """The owner's start for the jobs' streams and buckets (`provision(job_specs(storage))`), and
    the buckets opened. Raises as `provision`."""
    await provision(js, job_specs(storage))
    return await open_job_stores(js)


async def await_jetstream(
    js: JetStreamContext, storage: StorageSettings | None = None, *, owner: str = PROVISIONER
) -> JobStores:
    """Another service's start: `check_provisioned(job_specs(storage))`, and the buckets opened.
    Raises as `check_provisioned` (the caller waits on NotProvisioned within NATS_START_WAIT_S)."""
    await check_provisioned(js, job_specs(storage), owner=owner)
    return await open_job_stores(js)


async def open_job_stores(js: JetStreamContext) -> JobStores:
    """The `jobs` KV bucket and the `repos` Object Store, which must exist."""
    return JobStores(kv=await js.key_value(JOBS_BUCKET), repos=await js.object_store(REPOS_BUCKET))


def _check_structure(spec: StreamSpec, config: StreamConfig, owner: str) -> None:
    found = {field: _plain(getattr(config, field)) for field in spec.structure}
    wrong = {field: value for field, value in spec.structure.items() if found[field] != value}
    if wrong:
        raise JetStreamSetupError(
            f"the stream {spec.stream} exists with "
            + ", ".join(f"{field}={found[field]}" for field in wrong)
            + ", but codereview needs "
            + ", ".join(f"{field}={value}" for field, value in wrong.items())
            + f": it was made by something else. Move its data away if it matters (nats stream "
            f"backup {spec.stream}), delete it (nats stream rm {spec.stream}), and start the "
            f"{owner}, which creates it as needed"
        )


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


async def _create_or_update(js: JetStreamContext, spec: StreamSpec) -> bool:
    """Whether the stream was created (it did not exist)."""
    stream, wanted = spec.stream, spec.limits
    try:
        await js.stream_info(stream)
    except NotFoundError:
        existed = False
    else:
        existed = True
    try:
        await spec.create(js)
        return not existed
    except APIError as error:
        # ServiceUnavailableError is an APIError too, but a passing state (no leader yet), not a refusal.
        if isinstance(error, ServiceUnavailableError):
            raise
        if not (isinstance(error, BadRequestError) and error.err_code == _STREAM_CONFIG_DIFFERS):
            raise JetStreamSetupError(await _refusal(js, stream, wanted, error)) from error
    config = (await js.stream_info(stream)).config
    _check_structure(spec, config, PROVISIONER)
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
            f"{error.description}; set the values it has, or change the stream with the nats CLI"
        ) from error
    if differs:
        log.warning(
            "the stream %s had %s: changed to %s",
            stream,
            _describe(current, wanted, only=differs),
            _describe(differs, wanted),
        )
    return False


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


def scan_specs(limits: ScanLimits) -> list[StreamSpec]:
    """The scan work queue and the `scans` KV bucket, as the analyzer provisions them."""
    queue = scan_stream_config(limits)
    return [
        StreamSpec(
            stream=SCAN_STREAM,
            create=lambda js: js.add_stream(queue),
            limits={
                "num_replicas": ("NATS_REPLICAS", limits.replicas),
                "max_msgs": ("ANALYZER_SCAN_QUEUE_MAX_MSGS", limits.queue_max_msgs),
                "max_bytes": ("ANALYZER_SCAN_QUEUE_MAX_BYTES", limits.queue_max_bytes),
                "max_age": ("ANALYZER_SCAN_QUEUE_MAX_AGE_S", limits.queue_max_age_s),
            },
            structure={
                "subjects": [SCAN_SUBJECTS],
                "retention": RetentionPolicy.WORK_QUEUE.value,
                "storage": StorageType.FILE.value,
            },
        ),
        kv_spec(
            SCANS_BUCKET,
            replicas=limits.replicas,
            max_age=("ANALYZER_SCANS_MAX_AGE_S", limits.bucket_max_age_s),
            max_bytes=("ANALYZER_SCANS_MAX_BYTES", limits.bucket_max_bytes),
        ),
    ]


async def ensure_scan_jetstream(js: JetStreamContext, limits: ScanLimits) -> KeyValue:
    """Provision the scan work queue and the `scans` KV bucket (the analyzer owns them, as the
    jobs' streams); returns the bucket. Raises as `provision`."""
    await provision(js, scan_specs(limits), migration_hint=False)
    return await js.key_value(SCANS_BUCKET)
