"""Ask the gateway to review one function's source, through the `openai` package.

The gateway's virtual model (`code-review` by default) applies the review prompt, so the analyzer
sends the bare source and reads back `{"suggestions": [...]}` as the message content.
"""

from __future__ import annotations

import logging
import time

import aiohttp
import msgspec
import openai
from openai import AsyncOpenAI

from analyzer.errors import GatewayFailed, GatewayTimeout
from review_contract import Finding, ReviewContext
from servicekit.openai_wire import CompletionRead
from servicekit.redact import excerpt

logger = logging.getLogger("analyzer.review")


class _Review(msgspec.Struct):
    suggestions: list[str]
    findings: list[Finding] = []


_review_decoder = msgspec.json.Decoder(_Review)
# Only what the analyzer reads of a chat completion; other fields are ignored.
_completion_decoder = msgspec.json.Decoder(CompletionRead)


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
        except openai.APITimeoutError as exc:
            unreached = _connection_failure(exc)
            if unreached is not None:
                raise GatewayFailed(
                    f"the gateway could not be reached: {unreached}", upstream="gateway"
                ) from exc
            raise GatewayTimeout(
                "the gateway did not answer in time (GATEWAY_TIMEOUT_S)", upstream="gateway"
            ) from exc
        except openai.APIConnectionError as exc:
            raise GatewayFailed(f"the gateway could not be reached: {exc}", upstream="gateway") from exc
        except openai.APIStatusError as exc:
            raise _gateway_status_error(exc) from exc
        except Exception as exc:
            # A 200 whose body is not JSON surfaces as json's ValueError, and the package may raise
            # others on garbage: whatever it is, it is the gateway's answer that is wrong, not us.
            raise GatewayFailed(
                f"the gateway's answer could not be read: {type(exc).__name__}: {exc}", upstream="gateway"
            ) from exc
        content = _content_of(body)
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
        return review.suggestions, review.findings


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


def _content_of(body: bytes) -> str:
    try:
        completion = _completion_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise GatewayFailed(
            f"the gateway's answer is not a chat completion: {exc}; it began {body[:120]!r}",
            upstream="gateway",
        ) from exc
    if not completion.choices:
        raise GatewayFailed("the gateway's answer has no choices", upstream="gateway")
    content = completion.choices[0].message.content
    if content is None:
        raise GatewayFailed("the gateway's answer has no message content", upstream="gateway")
    return content
