"""Ask the gateway to review one function's source, or to check whole modules, over HTTP (aiohttp).

The gateway's virtual model (`code-review` by default) applies the review prompt, so the analyzer
sends the bare source as an OpenAI chat completion request and reads back
`{"suggestions": [...]}` as the message content. Calls are retried as the `openai` package
retries them (GATEWAY_RETRIES extra attempts on connection errors, timeouts, 408, 409, 429, 5xx,
after the gateway's `Retry-After` up to 60 s, else 0.5 s doubling up to 8 s, less up to a quarter
of jitter); the package itself is not used: its import alone cost a third of a second of CPU at
each start, and its request building more per call than the rest of a cached review.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import aiohttp
import msgspec

from analyzer.errors import GatewayFailed, GatewayTimeout
from review_contract import Finding, ReviewContext
from review_contract.checks import ChecksRequest, ChecksResponse
from servicekit.openai_wire import CompletionRead
from servicekit.redact import excerpt
from servicekit.retry_after import retry_after_seconds

if TYPE_CHECKING:
    from analyzer.settings import Settings

logger = logging.getLogger("analyzer.review")


class _Review(msgspec.Struct):
    suggestions: list[str]
    findings: list[Finding] = []


_review_decoder = msgspec.json.Decoder(_Review)
# Only what the analyzer reads of a chat completion; other fields are ignored.
_completion_decoder = msgspec.json.Decoder(CompletionRead)
_checks_encoder = msgspec.json.Encoder()
_checks_decoder = msgspec.json.Decoder(ChecksResponse)


@dataclass(frozen=True, slots=True)
class GatewayReview:
    """A review as the gateway answered it: suggestions, findings as data, and the tokens the
    model used for it (the completion's `usage.total_tokens`; 0 when it says none)."""

    suggestions: list[str]
    findings: list[Finding]
    tokens: int


# The most of the gateway's error message the analyzer repeats.
_GATEWAY_MESSAGE_CHARS = 300


def _gateway_status_error(status: int, body: bytes) -> GatewayFailed:
    """The gateway's refusal in the analyzer's words: its status, and the message of its own error
    body (`{"error": {"message": ...}}`, which names what failed in the gateway's words) cut to 300
    characters, anything key-like masked and control characters escaped. Any other body (a
    proxy's page, a provider's text passed on) is not repeated: it may hold anything, keys too."""
    try:
        parsed = msgspec.json.decode(body)
    except msgspec.DecodeError:
        parsed = None
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    said = ""
    if isinstance(message, str) and message:
        said = f": {excerpt(message, limit=_GATEWAY_MESSAGE_CHARS)}"
    error_class = GatewayTimeout if status == 504 else GatewayFailed
    return error_class(f"the gateway answered HTTP {status}{said}", upstream="gateway", gateway_status=status)


# Answers worth another attempt (as the openai package has it): the gateway may be busy or restarting.
_RETRY_STATUS = frozenset({408, 409, 429})
# The backoff between attempts: 0.5 s doubling up to 8 s, unless the gateway's Retry-After (up to
# 60 s) says otherwise.
_FIRST_WAIT_S = 0.5
_LONGEST_WAIT_S = 8.0
_LONGEST_RETRY_AFTER_S = 60.0


class _RefusalError(Exception):
    """An answer that is not 2xx: its status, body and Retry-After."""

    def __init__(self, status: int, body: bytes, retry_after: str | None) -> None:
        super().__init__(status)
        self.status, self.body, self.retry_after = status, body, retry_after


class GatewayClient:
    """The gateway's OpenAI-compatible chat completions (a function's review) and its
    `POST /checks` (whole modules' findings), on one aiohttp session: one key (the bearer token),
    one timeout per call (connecting, then each read: GATEWAY_TIMEOUT_S) and one retry policy.

    Use as `async with GatewayClient(...)`, or `await client.aclose()` when done.
    """

    def __init__(
        self, base_url: str, *, model: str, api_key: str, timeout_s: float, retries: int = 0
    ) -> None:
        # The OpenAI API's base URL (`<root>/v1`); `POST /checks` is beside it (`<root>/checks`).
        base = base_url.rstrip("/") + "/"
        self._completions_url = urljoin(base, "chat/completions")
        self._checks_url = urljoin(base, "../checks")
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._retries = retries
        self._session: aiohttp.ClientSession | None = None
        self.closed = False

    @classmethod
    def of(cls, settings: Settings) -> GatewayClient:
        """The client of GATEWAY_URL (GATEWAY_MODEL, _API_KEY, _TIMEOUT_S and _RETRIES with it)."""
        return cls(
            settings.gateway_url,
            model=settings.gateway_model,
            api_key=settings.gateway_api_key.get_secret_value(),
            timeout_s=settings.gateway_timeout_s,
            retries=settings.gateway_retries,
        )

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; a call after this is a RuntimeError."""
        self.closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def review(
        self, source: str, *, context: ReviewContext | None = None, request_id: str | None = None
    ) -> tuple[list[str], list[Finding]]:
        """The gateway's suggestions for `source`, and its findings as data.

        `context` (where the function stands in its repository) goes in the request body as
        `review_context`, beside the OpenAI fields.

        Raises GatewayTimeout (504) when the gateway does not answer in time or answers 504, and
        GatewayFailed (502) when it cannot be reached, answers an error, or answers anything that
        is not a JSON object with a list of string suggestions.
        """
        reviewed = await self.reviewed(source, context=context, request_id=request_id)
        return reviewed.suggestions, reviewed.findings

    async def reviewed(
        self, source: str, *, context: ReviewContext | None = None, request_id: str | None = None
    ) -> GatewayReview:
        """The review of `source` with the tokens it cost; raises what `review` raises."""
        started = time.perf_counter()
        request = _CompletionRequest(
            messages=[_Message(content=source)],
            model=self._model,
            review_context=msgspec.UNSET if context is None else context,
        )
        body = await self._post(self._completions_url, _request_encoder.encode(request), request_id)
        completion = _completion_of(body)
        content = _content_of(completion)
        try:
            review = _review_decoder.decode(content)
        except msgspec.DecodeError as exc:
            raise GatewayFailed(
                f'the gateway\'s answer is not {{"suggestions": [strings]}}: {exc}; '
                f"it began {content[:120]!r}",
                upstream="gateway",
            ) from exc
        logger.debug(
            "gateway reviewed %d characters: %d suggestions in %.0f ms",
            len(source),
            len(review.suggestions),
            (time.perf_counter() - started) * 1000,
        )
        tokens = completion.usage.total_tokens if completion.usage is not None else 0
        return GatewayReview(suggestions=review.suggestions, findings=review.findings, tokens=max(0, tokens))

    async def checks(self, request: ChecksRequest, *, request_id: str | None = None) -> ChecksResponse:
        """The gateway's `POST /checks` (beside its OpenAI API: `<root>/checks` for a GATEWAY_URL of
        `<root>/v1`): each module's functions with their findings. Same client, so the same key,
        timeout (GATEWAY_TIMEOUT_S) and retries (GATEWAY_RETRIES) as a review.

        Raises GatewayTimeout (504) when the gateway does not answer in time or answers 504, and
        GatewayFailed (502) when it cannot be reached, answers an error, or answers anything that
        is not a ChecksResponse.
        """
        started = time.perf_counter()
        body = await self._post(self._checks_url, _checks_encoder.encode(request), request_id)
        try:
            answer = _checks_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise GatewayFailed(
                f"the gateway's answer to POST /checks is not a ChecksResponse: {exc}; "
                f"it began {body[:120]!r}",
                upstream="gateway",
            ) from exc
        logger.debug(
            "gateway checked %d modules in %.0f ms",
            len(request.modules),
            (time.perf_counter() - started) * 1000,
        )
        return answer

    async def _post(self, url: str, body: bytes, request_id: str | None) -> bytes:
        """The body of a 2xx answer to POST `url`, after up to GATEWAY_RETRIES more attempts."""
        headers = self._headers if not request_id else {**self._headers, "X-Request-ID": request_id}
        attempt = 0
        while True:
            try:
                return await self._attempt(url, body, headers)
            except (_RefusalError, aiohttp.ClientError, TimeoutError) as exc:
                wait = self._wait_before_retry(exc, attempt)
                if wait is None:
                    raise _call_failed(exc) from exc
                attempt += 1
                logger.info(
                    "gateway %s: %s, retry %d/%d in %.1f s",
                    url,
                    _what_failed(exc),
                    attempt,
                    self._retries,
                    wait,
                )
            await asyncio.sleep(wait)

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> bytes:
        if self.closed:
            raise RuntimeError("the gateway client is closed")
        if self._session is None:
            # Made here, inside the event loop, not in __init__ (which may run outside one).
            # Idle connections are dropped after 4 s, before the gateway's server drops them (5 s):
            # a request is never sent on a connection the other end is closing.
            connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            answer = await response.read()
            if not 200 <= response.status < 300:
                raise _RefusalError(response.status, answer, response.headers.get("Retry-After"))
            return answer

    def _wait_before_retry(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 2`, or None when no more is made."""
        if attempt >= self._retries:
            return None
        if isinstance(exc, _RefusalError):
            if exc.status not in _RETRY_STATUS and exc.status < 500:
                return None
            asked = retry_after_seconds(exc.retry_after)
            if asked is not None and 0 < asked <= _LONGEST_RETRY_AFTER_S:
                return asked
        return min(_FIRST_WAIT_S * 2.0**attempt, _LONGEST_WAIT_S) * (1 - 0.25 * random.random())  # noqa: S311


class _Message(msgspec.Struct):
    content: str
    role: str = "user"


class _CompletionRequest(msgspec.Struct, omit_defaults=True):
    messages: list[_Message]
    model: str
    # Where the function stands in its repository: the gateway's extension of the OpenAI request.
    review_context: ReviewContext | msgspec.UnsetType = msgspec.UNSET


_request_encoder = msgspec.json.Encoder()


def _what_failed(exc: BaseException) -> str:
    if isinstance(exc, _RefusalError):
        return f"HTTP {exc.status}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _call_failed(exc: Exception) -> GatewayFailed:
    """A failed call to the gateway in the analyzer's words: GatewayTimeout when it was slow,
    GatewayFailed when it could not be reached or answered an error."""
    if isinstance(exc, _RefusalError):
        return _gateway_status_error(exc.status, exc.body)
    # A connection that could not be made in time is a gateway that cannot be reached (502), not a
    # slow one (504): only a read that timed out, once the request was sent, is a timeout.
    if isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(exc, aiohttp.SocketTimeoutError):
        return GatewayFailed(f"the gateway could not be reached: {exc}", upstream="gateway")
    if isinstance(exc, TimeoutError):
        return GatewayTimeout("the gateway did not answer in time (GATEWAY_TIMEOUT_S)", upstream="gateway")
    return GatewayFailed(
        f"the gateway's answer could not be read: {type(exc).__name__}: {exc}", upstream="gateway"
    )


def _completion_of(body: bytes) -> CompletionRead:
    try:
        return _completion_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise GatewayFailed(
            f"the gateway's answer is not a chat completion: {exc}; it began {body[:120]!r}",
            upstream="gateway",
        ) from exc


def _content_of(completion: CompletionRead) -> str:
    if not completion.choices:
        raise GatewayFailed("the gateway's answer has no choices", upstream="gateway")
    content = completion.choices[0].message.content
    if content is None:
        raise GatewayFailed("the gateway's answer has no message content", upstream="gateway")
    return content
