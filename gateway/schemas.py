"""Request and response bodies of the gateway's routes (the OpenAI shapes it needs, nothing more)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.review import Usage
from review_contract import ReviewContext

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


class AssistantMessage(msgspec.Struct, kw_only=True, frozen=True):
    role: str = "assistant"
    content: str


class Choice(msgspec.Struct, kw_only=True, frozen=True):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = "stop"
    logprobs: None = None


class ChatCompletion(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True, frozen=True):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]


class ModelCard(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(msgspec.Struct, kw_only=True, frozen=True):
    object: str = "list"
    data: list[ModelCard]


class _UpstreamModels(msgspec.Struct):
    data: list[ModelCard]


UPSTREAM_MODELS = msgspec.json.Decoder(_UpstreamModels)
