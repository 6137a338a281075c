"""The review cache: the same function, provider, model and prompt costs one model call per TTL.

In NATS JetStream KV when NATS_URL is set (shared by every gateway replica; the bucket's max age
is the TTL), in process memory otherwise. A cache failure is logged and treated as a miss: it
never fails a review, and never slows one for long: each NATS call has REVIEW_CACHE_TIMEOUT_S, a
breaker skips the cache while NATS is away, and writes run after the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

import msgspec
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from gateway.errors import UNDECODABLE, ConfigError
from gateway.prompt import PROMPT_VERSION
from review_contract import Finding, ReviewContext
from servicekit.nats_connect import NatsUnreachable, connect_nats, when_jetstream_ready

log = logging.getLogger("gateway.cache")

T = TypeVar("T")

# Seconds for each attempt to connect to NATS.
_CONNECT_TIMEOUT_S = 3.0
# After a failed cache call, reviews skip the cache this long; then one call tries it again. While
# the client is disconnected that try costs nothing, so the cache is back about a second after NATS.
RETRY_AFTER_S = 1.0
# Writes still running after their reviews were answered, at most; more are dropped (a cache may
# forget), so a NATS that answers slowly cannot grow the gateway's memory. Each lasts at most
# REVIEW_CACHE_TIMEOUT_S, so a flood needs more than this many reviews within that time.
MAX_PENDING_WRITES = 256
# NATS answered and refused this one call (a full bucket, an oversized value): it is there, so the
# breaker stays closed and the call fails alone, logged as before.
_REFUSED: tuple[type[Exception], ...] = (APIError, MaxPayloadError)


class CachedReview(msgspec.Struct, kw_only=True, frozen=True):
    suggestions: list[str]
    provider: str
    model: str
    findings: list[Finding] = []


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(CachedReview)


def context_digest(context: ReviewContext | None) -> str | None:
    """SHA-256 of a review's context (its module may be a megabyte: hashed once a review), or None."""
    return None if context is None else hashlib.sha256(_ENCODER.encode(context)).hexdigest()


def review_key(code: str, provider: str, model: str, limit: int, context: str | None = None) -> str:
    """A key over everything that changes a review, its context's digest (`context_digest`)
    included; hex: a valid NATS KV key."""
    digest = hashlib.sha256(_ENCODER.encode([code, provider, model, PROMPT_VERSION, limit, context]))
    return digest.hexdigest()


class ReviewCache(Protocol):
    async def open(self) -> None: ...

    async def get(self, key: str) -> CachedReview | None: ...

    async def put(self, key: str, review: CachedReview) -> None: ...

    def put_later(self, key: str, review: CachedReview) -> None: ...

    async def close(self) -> None: ...


# REVIEW_CACHE_MAX_BYTES and REVIEW_CACHE_MAX_ENTRY_BYTES when a cache is built without them.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_ENTRY_BYTES = 256 * 1024


def _fits(data: bytes, max_entry_bytes: int, max_bytes: int) -> bool:
    """Whether a review of this encoding may be cached; one that may not is said at DEBUG."""
    if len(data) <= min(max_entry_bytes, max_bytes):
        return True
    log.debug(
        "review not cached: %d bytes, over REVIEW_CACHE_MAX_ENTRY_BYTES=%d or REVIEW_CACHE_MAX_BYTES=%d",
        len(data),
        max_entry_bytes,
        max_bytes,
    )
    return False


class MemoryCache:
    """An LRU of at most `size` reviews and `max_bytes` bytes, each kept `ttl` seconds (0: no expiry).

    Reviews are kept encoded, so the bytes counted are the bytes held; one whose encoding is over
    `max_entry_bytes` (or `max_bytes`) is not kept.
    """

    def __init__(
        self,
        ttl: float,
        size: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def open(self) -> None:
        """Nothing to open: the reviews live in this process."""

    async def get(self, key: str) -> CachedReview | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, data = item
        if self.ttl and time.monotonic() >= expires:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return _DECODER.decode(data)

    async def put(self, key: str, review: CachedReview) -> None:
        self.put_later(key, review)

    def put_later(self, key: str, review: CachedReview) -> None:
        """Keep `review` now: storing in memory never delays an answer."""
        if self.size == 0:
            return
        data = _ENCODER.encode(review)
        if not _fits(data, self.max_entry_bytes, self.max_bytes):
            return
        self._drop(key)
        self._items[key] = (time.monotonic() + self.ttl, data)
        self.bytes += len(data)
        while len(self._items) > self.size or self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= len(item[1])

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0


class Breaker:
    """Whether the NATS cache is worth a call now: closed (yes); open for `retry_after_s` after a
    failure (no: the call is skipped at once); then one call at a time tries it (a probe) until
    one succeeds and closes it.

    Says so once: one WARNING when it opens, one INFO when it closes; failed probes are silent.
    """

    def __init__(
        self, retry_after_s: float = RETRY_AFTER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._off_since: float | None = None  # None: closed
        self._retry_at = 0.0
        self._probing = False
        self._skipped = 0

    @property
    def is_open(self) -> bool:
        return self._off_since is not None

    def admit(self) -> Literal["call", "probe"] | None:
        """The ticket of a call that may go ahead, or None: skip the call.

        "call" while closed; "probe" for the first call after the wait while no other probe runs.
        Report each admitted call's outcome with its ticket (succeeded, failed or abandoned)."""
        if self._off_since is None:
            return "call"
        if self._probing or self._clock() < self._retry_at:
            self._skipped += 1
            return None
        self._probing = True
        return "probe"

    def succeeded(self, ticket: Literal["call", "probe"]) -> None:
        """NATS answered the call. Only a probe closes the breaker: a call admitted before it
        opened says nothing about NATS now."""
        if ticket != "probe" or self._off_since is None:
            return
        log.info(
            "review cache on again: NATS answered after %.1f s off (%d cache calls skipped)",
            self._clock() - self._off_since,
            self._skipped,
        )
        self._off_since, self._probing = None, False

    def failed(self, ticket: Literal["call", "probe"], reason: str) -> None:
        """NATS did not answer the call (`reason` says how): open, or stay open for another wait."""
        now = self._clock()
        if self._off_since is None:
            self._off_since, self._skipped = now, 0
            log.warning(
                "review cache off: %s; reviews go without it, trying it again every %g s",
                reason,
                self.retry_after_s,
            )
        elif ticket != "probe":
            return  # admitted before it opened: the wait already runs
        self._probing = False
        self._retry_at = now + self.retry_after_s

    def abandoned(self, ticket: Literal["call", "probe"]) -> None:
        """The call ended without a verdict (cancelled): the next call may probe."""
        if ticket == "probe":
            self._probing = False


class _Skipped(Exception):  # noqa: N818 - a signal between NatsCache's methods, never raised out
    """The call was not made (cache closed or off) or NATS did not answer it: a miss."""


async def _reconcile(js: JetStreamContext, bucket: str, ttl: float, replicas: int) -> None:
    """Change an existing bucket to our TTL and replicas; a refusal is logged, not fatal: it is a cache."""
    config = (await js.stream_info(f"KV_{bucket}")).config
    had = f"REVIEW_CACHE_TTL={config.max_age or 0:g}, NATS_REPLICAS={config.num_replicas}"
    wanted = f"REVIEW_CACHE_TTL={ttl:g}, NATS_REPLICAS={replicas}"
    config.max_age, config.num_replicas = ttl, replicas
    if config.duplicate_window and ttl:
        config.duplicate_window = min(config.duplicate_window, ttl)
    try:
        await js.update_stream(config)
    except APIError as exc:
        log.warning(
            "review cache bucket %s has %s, this gateway asks for %s, and NATS refused the change "
            "(%s): using it as it is",
            bucket,
            had,
            wanted,
            exc.description,
        )
        return
    if had != wanted:
        log.warning("review cache bucket %s had %s: changed to %s", bucket, had, wanted)


async def _cap_bytes(js: JetStreamContext, bucket: str, max_bytes: int) -> None:
    """The bucket holds at most `max_bytes` and drops its oldest reviews for new ones past that.

    nats-py makes KV buckets discard *new* writes when full: a full cache would then refuse every
    review until old ones expire (up to REVIEW_CACHE_TTL). A refusal is logged, not fatal.
    """
    config = (await js.stream_info(f"KV_{bucket}")).config
    if config.max_bytes == max_bytes and config.discard == DiscardPolicy.OLD:
        return
    config.max_bytes, config.discard = max_bytes, DiscardPolicy.OLD
    try:
        await js.update_stream(config)
    except APIError as exc:
        log.warning(
            "review cache bucket %s: NATS refused REVIEW_CACHE_MAX_BYTES=%d (%s): using it as it is",
            bucket,
            max_bytes,
            exc.description,
        )


class NatsCache:
    """Reviews in a JetStream KV bucket whose max age is the TTL and whose size is `max_bytes`."""

    def __init__(
        self,
        url: str,
        bucket: str,
        ttl: float,
        replicas: int = 1,
        *,
        start_wait_s: float = 30.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        timeout_s: float = 0.05,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.url = url
        self.bucket = bucket
        self.ttl = ttl
        self.replicas = replicas
        self.start_wait_s = start_wait_s
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        # Each read or write (REVIEW_CACHE_TIMEOUT_S); nats-py's own default is 5 s.
        self.timeout_s = timeout_s
        self.breaker = Breaker(retry_after_s)
        self._connection: NatsClient | None = None
        self._kv: KeyValue | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def pending_writes(self) -> int:
        """Writes started by put_later that still run."""
        return len(self._writes)

    async def open(self) -> None:
        """Connect and create (or reuse) the bucket; ConfigError naming the URL if NATS (or its
        JetStream) does not answer within NATS_START_WAIT_S.

        `url` may list a cluster's servers, comma-separated (failover). The bucket gets `replicas`
        copies; an existing one with another TTL or replica count is changed to these, or, when
        NATS refuses (a single server cannot hold 3 replicas), used as it is with a warning.
        """
        url = self.url
        try:
            # The operator asked for a shared cache: a gateway whose NATS is not there yet waits
            # for it like the other services, then says so and stops.
            connection = await connect_nats(
                url, name="gateway", timeout_s=_CONNECT_TIMEOUT_S, start_wait_s=self.start_wait_s, log=log
            )
        except NatsUnreachable as exc:
            raise ConfigError(f"review cache: {exc}") from exc
        try:
            kv = await when_jetstream_ready(
                lambda: self._bucket(connection), url=url, start_wait_s=self.start_wait_s, log=log
            )
        except (NatsUnreachable, ConfigError) as exc:
            await connection.close()
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"review cache: {exc}") from exc
        self._connection, self._kv = connection, kv

    async def _bucket(self, connection: NatsClient) -> KeyValue:
        bucket, ttl, replicas = self.bucket, self.ttl, self.replicas
        js = connection.jetstream()
        try:
            kv = await js.create_key_value(bucket=bucket, history=1, ttl=ttl or None, replicas=replicas)
        except APIError as exc:
            # Not ready yet (no JetStream leader): when_jetstream_ready tries again.
            if isinstance(exc, ServiceUnavailableError):
                raise
            # Another configuration (10058), or one this NATS cannot hold (R3 on a single server,
            # which it says before looking for the bucket): an existing bucket is changed or used.
            try:
                await _reconcile(js, bucket, ttl, replicas)
                kv = await js.key_value(bucket)
            except NotFoundError:
                raise ConfigError(
                    f"review cache: NATS refused the bucket {bucket} with NATS_REPLICAS={replicas}: "
                    f"{exc.description}"
                ) from exc
        await _cap_bytes(js, bucket, self.max_bytes)
        return kv

    async def _call(self, what: str, call: Callable[[KeyValue], Awaitable[T]]) -> T:
        """`call(kv)` within `timeout_s`, through the breaker.

        Raises _Skipped when the cache is closed or off, or when NATS did not answer (a timeout,
        no responders, JetStream unavailable, the connection down: the breaker opens); what NATS
        answered (KeyNotFoundError, an APIError refusing this call) as it is.
        """
        kv, connection = self._kv, self._connection
        if kv is None or connection is None:
            raise _Skipped
        ticket = self.breaker.admit()
        if ticket is None:
            raise _Skipped
        if not connection.is_connected:
            # nats-py would buffer the request until it reconnects and let it time out meanwhile.
            self.breaker.failed(ticket, "the connection to NATS is down")
            raise _Skipped
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call(kv)
        except Exception as exc:
            if isinstance(exc, _REFUSED) and not isinstance(exc, ServiceUnavailableError):
                self.breaker.succeeded(ticket)
                raise
            self.breaker.failed(ticket, _failure(what, exc, self.timeout_s))
            raise _Skipped from exc
        except BaseException:
            self.breaker.abandoned(ticket)
            raise
        self.breaker.succeeded(ticket)
        return result

    async def get(self, key: str) -> CachedReview | None:
        """The review kept under `key`; None when there is none, it cannot be read, or NATS does
        not answer within `timeout_s` (or is known to be away: then at once)."""
        if self._kv is None:
            return None
        try:
            entry = await self._call("read", lambda kv: kv.get(key))
        except (KeyNotFoundError, _Skipped):
            return None
        except Exception as exc:  # the cache must never fail a review
            log.warning("review cache read failed: %s", exc)
            return None
        if entry.value is None:
            return None
        try:
            return _DECODER.decode(entry.value)
        except UNDECODABLE:
            return None

    async def put(self, key: str, review: CachedReview) -> None:
        """Store `review` under `key` and wait for NATS (at most `timeout_s`); a failure is
        logged, or skipped while NATS is away, never raised."""
        if self._kv is None:
            return
        value = _ENCODER.encode(review)
        if not _fits(value, self.max_entry_bytes, self.max_bytes):
            return
        try:
            await self._call("write", lambda kv: kv.put(key, value))
        except _Skipped:
            return
        except Exception as exc:  # the cache must never fail a review
            log.warning("review cache write failed: %s", exc)

    def put_later(self, key: str, review: CachedReview) -> None:
        """Start `put` and return at once: an answer never waits for its review to be stored.

        Dropped (a cache may forget) when the cache is closed or MAX_PENDING_WRITES writes still run.
        """
        if self._kv is None or len(self._writes) >= MAX_PENDING_WRITES:
            return
        task = asyncio.create_task(self.put(key, review))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """Finish the writes still running (each within `timeout_s`), then drain the connection."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._connection is not None:
            try:
                await self._connection.drain()
            except NatsError:  # reconnecting (NATS is away) or closed: nothing left to flush
                await self._connection.close()
            self._connection = self._kv = None


def _failure(what: str, exc: Exception, timeout_s: float) -> str:
    """How a cache call failed, for the one line that says the cache is off."""
    if isinstance(exc, TimeoutError):  # asyncio.timeout's, and nats-py's own (a subclass)
        return f"NATS did not answer a {what} within {timeout_s:g} s (REVIEW_CACHE_TIMEOUT_S)"
    return f"a {what} failed: {type(exc).__name__}: {exc}"
