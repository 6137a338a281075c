"""Ask the gateway to review one function's source, through the `openai` package.

The gateway's virtual model (`code-review` by default) applies the review prompt, so the analyzer
sends the bare source and reads back `{"suggestions": [...]}` as the message content.
"""

from __future__ import annotations

import logging
import time

import msgspec
import openai
from openai import AsyncOpenAI

from analyzer.errors import GatewayError, GatewayTimeout

logger = logging.getLogger("analyzer.review")


class _Review(msgspec.Struct):
    suggestions: list[str]


_review_decoder = msgspec.json.Decoder(_Review)


def _gateway_status_error(exc: openai.APIStatusError) -> GatewayError:
    status = exc.status_code
    try:
        text = exc.response.text[:300]
    except Exception:  # a body we cannot read still leaves the status to report
        text = ""
    error_class = GatewayTimeout if status == 504 else GatewayError
    return error_class(
        f"the gateway answered HTTP {status}: {text or exc.message}",
        upstream="gateway",
        gateway_status=status,
    )


class Reviewer:
    """Reviews a function source through the gateway's OpenAI-compatible chat completions."""

    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

    async def review(self, source: str, *, request_id: str | None = None) -> list[str]:
        """The gateway's suggestions for `source`.

        Raises GatewayTimeout (504) when the gateway does not answer in time or answers 504, and
        GatewayError (502) when it cannot be reached, answers an error, or answers anything that
        is not a JSON object with a list of string suggestions.
        """
        started = time.perf_counter()
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=[{"role": "user", "content": source}],
                extra_headers={"X-Request-ID": request_id} if request_id else None,
            )
        except openai.APITimeoutError as exc:
            raise GatewayTimeout(
                "the gateway did not answer in time (GATEWAY_TIMEOUT_S)", upstream="gateway"
            ) from exc
        except openai.APIConnectionError as exc:
            raise GatewayError(f"the gateway could not be reached: {exc}", upstream="gateway") from exc
        except openai.APIStatusError as exc:
            raise _gateway_status_error(exc) from exc
        except Exception as exc:
            # A 200 whose body is not JSON surfaces as json's ValueError, and the package may raise
            # others on garbage: whatever it is, it is the gateway's answer that is wrong, not us.
            raise GatewayError(
                f"the gateway's answer could not be read: {type(exc).__name__}: {exc}", upstream="gateway"
            ) from exc
        content = _content_of(completion)
        try:
            review = _review_decoder.decode(content)
        except msgspec.DecodeError as exc:
            raise GatewayError(
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
        return review.suggestions


def _content_of(completion: object) -> str:
    # The openai package builds its models without validation: a garbage answer can leave any
    # of these missing or of another type.
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise GatewayError("the gateway's answer has no choices", upstream="gateway")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise GatewayError("the gateway's answer has no message content", upstream="gateway")
    return content
