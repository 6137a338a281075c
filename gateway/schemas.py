"""Request and response bodies of the gateway's own routes; the OpenAI response shapes it writes are
servicekit.openai_wire's, shared with model_host."""

from __future__ import annotations

from typing import Any

import msgspec

from review_contract import ReviewContext
from servicekit.openai_wire import ModelCard

CODE_REVIEW_MODEL = "code-review"


class AnalyzeRequest(msgspec.Struct, kw_only=True, frozen=True):
    function_code: str


class AnalyzeResponse(msgspec.Struct, kw_only=True, frozen=True):
    suggestions: list[str]


class Health(msgspec.Struct, kw_only=True, frozen=True):
    status: str


class Readiness(msgspec.Struct, kw_only=True, frozen=True):
    status: str
    # Each provider of the chain: "ok", or why it did not answer.
    providers: dict[str, str]


class ChatRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Just enough of a chat completion request to route it; the rest is forwarded untouched.

    Keys not named here are accepted (msgspec ignores them) and reach the provider in the raw body.
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    # Only for `code-review`: where the function stands in its repository (sent by the analyzer).
    review_context: ReviewContext | None = None


class _UpstreamModels(msgspec.Struct):
    data: list[ModelCard]


UPSTREAM_MODELS = msgspec.json.Decoder(_UpstreamModels)
