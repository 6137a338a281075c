"""Ask the gateway to review one function's source, through the `openai` package.

The gateway's virtual model (`code-review` by default) applies the review prompt, so the analyzer
sends the bare source and reads back `{"suggestions": [...]}` as the message content.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import aiohttp
import httpx
import msgspec
import openai
from openai import AsyncOpenAI

from analyzer.errors import GatewayFailed, GatewayTimeout
from review_contract import Finding, ReviewContext
from review_contract.checks import ChecksRequest, ChecksResponse
from servicekit.openai_wire import CompletionRead
from servicekit.redact import excerpt

logger = logging.getLogger("analyzer.review")


class _Review(msgspec.Struct):
    suggestions: list[str]
    findings: list[Finding] = []


_review_decoder = msgspec.json.Decoder(_Review)
# Only what the analyzer reads of a chat completion; other fields are ignored.
_completion_decoder = msgspec.json.Decoder(CompletionRead)
_checks_encoder = msgspec.json.Encoder()
_checks_decoder = msgspec.json.Decoder(ChecksResponse)
# Where the gateway's `POST /checks` is, from the base URL of its OpenAI API (`<root>/v1/`): beside it.
CHECKS_PATH = "../checks"


@dataclass(frozen=True, slots=True)
class GatewayReview:
    """A review as the gateway answered it: suggestions, findings as data, and the tokens the
    model used for it (the completion's `usage.total_tokens`; 0 when it says none)."""

    suggestions: list[str]
    findings: list[Finding]
    tokens: int


# The most of the gateway's error message the analyzer repeats.
_GATEWAY_MESSAGE_CHARS = 300


def _gateway_status_error(exc: openai.APIStatusError) -> GatewayFailed:
    """The gateway's refusal in the analyzer's words: its status, and the message of its own error
    body (`{"error": {"message": ...}}`, which names what failed in the gateway's words) cut to 300
    characters, anything key-like masked and control characters escaped. Any other body (a
    proxy's page, a provider's text passed on) is not repeated: it may hold anything, keys too."""
    status = exc.status_code
    # The openai package parses the body and keeps its "error" object in `body`.
    error = exc.body
    message = error.get("message") if isinstance(error, dict) else None
    said = ""
    if isinstance(message, str) and message:
        said = f": {excerpt(message, limit=_GATEWAY_MESSAGE_CHARS)}"
    error_class = GatewayTimeout if status == 504 else GatewayFailed
    return error_class(f"the gateway answered HTTP {status}{said}", upstream="gateway", gateway_status=status)


class GatewayClient:
    """Reviews a function source through the gateway's OpenAI-compatible chat completions."""

    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

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
        try:
            # The raw answer, decoded here with msgspec: the package's own parsing into pydantic
            # models costs more CPU than the rest of a cached lookup, and checks nothing.
            raw = await self._client.chat.completions.with_raw_response.create(
                model=self._model,
                messages=[{"role": "user", "content": source}],
                extra_headers={"X-Request-ID": request_id} if request_id else None,
                extra_body={"review_context": msgspec.to_builtins(context)} if context is not None else None,
            )
            body = raw.content
        except Exception as exc:
            raise _call_failed(exc) from exc
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
        url = self._client.base_url.join(CHECKS_PATH)
        headers = {"Content-Type": "application/json"}
        if request_id:
            headers["X-Request-ID"] = request_id
        try:
            response = await self._client.post(
                str(url),
                cast_to=httpx.Response,
                content=_checks_encoder.encode(request),
                options={"headers": headers},
            )
            body = await response.aread()
        except Exception as exc:
            raise _call_failed(exc) from exc
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


def _call_failed(exc: Exception) -> GatewayFailed:
    """A failed call to the gateway in the analyzer's words: GatewayTimeout when it was slow,
    GatewayFailed when it could not be reached or answered an error or garbage."""
    if isinstance(exc, GatewayFailed):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        unreached = _connection_failure(exc)
        if unreached is not None:
            return GatewayFailed(f"the gateway could not be reached: {unreached}", upstream="gateway")
        return GatewayTimeout("the gateway did not answer in time (GATEWAY_TIMEOUT_S)", upstream="gateway")
    if isinstance(exc, openai.APIConnectionError):
        return GatewayFailed(f"the gateway could not be reached: {exc}", upstream="gateway")
    if isinstance(exc, openai.APIStatusError):
        return _gateway_status_error(exc)
    # A 200 whose body is not JSON surfaces as json's ValueError, and the package may raise
    # others on garbage: whatever it is, it is the gateway's answer that is wrong, not us.
    return GatewayFailed(
        f"the gateway's answer could not be read: {type(exc).__name__}: {exc}", upstream="gateway"
    )


def _connection_failure(exc: BaseException) -> aiohttp.ClientConnectionError | None:
    """The aiohttp error under an openai timeout error when no answer had begun, else None.

    The aiohttp transport reports every connection error but a read timeout as a connect timeout,
    even a refused connection: that gateway could not be reached (502), it was not slow (504).
    Read from aiohttp's own error in the cause chain, the one package of the chain we declare.
    """
    cause = exc.__cause__
    while cause is not None:
        read_timeout = isinstance(cause, aiohttp.SocketTimeoutError)
        if isinstance(cause, aiohttp.ClientConnectionError) and not read_timeout:
            return cause
        if isinstance(cause, aiohttp.ClientError):
            return None
        cause = cause.__cause__
    return None


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
