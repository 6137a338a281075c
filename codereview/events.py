"""The NATS side: a job's events drive the progress bar, and `watch` prints every job event.

NATS is optional for following a job: without it (not reachable, or not exposed) the job
record is polled over HTTP instead, so a review works with the analyzer's URL alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec
import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from codereview.api import Analyzer
from codereview.errors import CliError, ExitCode
from jobs_contract import EVENTS_PREFIX, TERMINAL, JobEvent, JobRecord, JobStatus

NATS_CONNECT_TIMEOUT_S = 2.0
# With events flowing, the record is read again this often only in case an event was missed.
RECHECK_WITH_EVENTS_S = 2.0
# Characters that would make a job id match other subjects than its own.
_SUBJECT_SPECIALS = frozenset(".*> \t\r\n")

OnUpdate = Callable[[JobStatus, float, int], None]


async def connect(url: str) -> NatsClient:
    """A NATS connection that does not retry; raises CliError (SERVICE) when it cannot be made."""

    async def quiet(exc: Exception) -> None:
        """nats-py logs every failed attempt with a traceback by default; the CliError says it once."""

    try:
        # nats-py tries a server for ever when max_reconnect_attempts is 0; 1 means: twice, then give up.
        async with asyncio.timeout(3 * NATS_CONNECT_TIMEOUT_S):
            return await nats.connect(
                url,
                name="codereview-cli",
                connect_timeout=NATS_CONNECT_TIMEOUT_S,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=quiet,
            )
    except (OSError, TimeoutError, ValueError, nats.errors.Error) as exc:
        reason = str(exc) or type(exc).__name__
        raise CliError(
            f"nats at {url}: cannot connect ({reason}); is the stack running (python3 dev.py up)? "
            "Or point --nats-url / NATS_URL at it",
            ExitCode.SERVICE,
            service="nats",
        ) from None


def job_subject(job_id: str | None) -> str:
    """The subjects of one job's events (all jobs' when None); USAGE for an id that is no subject token."""
    if job_id is None:
        return f"{EVENTS_PREFIX}.>"
    if not job_id or _SUBJECT_SPECIALS.intersection(job_id):
        raise CliError(f"{job_id!r} is not a job id", ExitCode.USAGE)
    return f"{EVENTS_PREFIX}.{job_id}.*"


async def wait_for_job(
    analyzer: Analyzer,
    job_id: str,
    *,
    nats_url: str,
    on_update: OnUpdate,
    timeout_s: float,
    poll_s: float,
) -> tuple[JobRecord, bool]:
    """The job's record once it is ready or failed, and whether NATS events were used.

    `on_update` gets (status, progress, files) from every event and every record read.
    Raises CliError (SERVICE) when the job is still not finished after `timeout_s`.
    """
    events: asyncio.Queue[JobEvent] = asyncio.Queue()

    async def on_message(message: Msg) -> None:
        # Not an event of ours: the record read after it still tells the truth.
        with contextlib.suppress(msgspec.DecodeError):
            events.put_nowait(msgspec.json.decode(message.data, type=JobEvent))

    try:
        nc: NatsClient | None = await connect(nats_url)
    except CliError:
        nc = None
    try:
        if nc is not None:
            await nc.subscribe(job_subject(job_id), cb=on_message)
            # Subscribed before the first read, so no event between the two is lost.
            await nc.flush()
        interval = RECHECK_WITH_EVENTS_S if nc is not None else poll_s
        deadline = time.monotonic() + timeout_s
        while True:
            record = await analyzer.job(job_id)
            on_update(record.status, record.progress, record.files)
            if record.status in TERMINAL:
                return record, nc is not None
            left = deadline - time.monotonic()
            if left <= 0:
                raise CliError(
                    f"job {job_id} is still {record.status} after {timeout_s:g} s; "
                    f"try a longer --wait, or `codereview watch --job {job_id}`",
                    ExitCode.SERVICE,
                    service="analyzer",
                    job_id=job_id,
                )
            try:
                async with asyncio.timeout(min(interval, left)):
                    while True:
                        event = await events.get()
                        on_update(event.status, event.progress, event.files)
                        if event.status in TERMINAL:
                            break  # the record, read at once, is the final word
            except TimeoutError:
                pass
    finally:
        if nc is not None:
            await nc.close()


async def watch(
    nats_url: str,
    job_id: str | None,
    *,
    count: int | None,
    on_ready: Callable[[str], None],
    on_event: Callable[[str, JobEvent | None], None],
) -> None:
    """Call `on_ready(subject)` once subscribed, then `on_event(subject, event)` for each message
    (event None: a message that is not a job event) until `count` messages have come, or for ever.

    Raises CliError (SERVICE) when NATS cannot be reached or the connection is lost.
    """
    subject = job_subject(job_id)
    nc = await connect(nats_url)
    try:
        subscription = await nc.subscribe(subject)
        await nc.flush()
        on_ready(subject)
        seen = 0
        async for message in subscription.messages:
            try:
                event: JobEvent | None = msgspec.json.decode(message.data, type=JobEvent)
            except msgspec.DecodeError:
                event = None
            on_event(message.subject, event)
            seen += 1
            if count is not None and seen >= count:
                return
        raise CliError(f"nats at {nats_url}: connection lost", ExitCode.SERVICE, service="nats")
    finally:
        await nc.close()
