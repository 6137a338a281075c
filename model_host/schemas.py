"""The OpenAI wire shapes model_host reads and writes (the subset it implements), as msgspec Structs.

Requests reject unknown keys: a parameter this server would silently ignore is a clear 400
instead. Responses carry the keys OpenAI's own responses carry, so the `openai` package parses
them into its usual types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

# -- request -----------------------------------------------------------------------------------


class ContentPart(msgspec.Struct, kw_only=True, frozen=True):
    # Unknown fields pass, so an image part gets "text parts only" rather than "unknown field image_url".
    type: str
    text: str | None = None


class Message(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class JsonSchemaFormat(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    model: str
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    seed: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    logprobs: bool | None = None
    user: str | None = None


# -- responses ---------------------------------------------------------------------------------


FinishReason = Literal["stop", "length"]


class Usage(msgspec.Struct, kw_only=True, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct, kw_only=True, frozen=True):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(msgspec.Struct, kw_only=True, frozen=True):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletion(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True, frozen=True):
    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    # Only on the extra last chunk asked for with stream_options.include_usage (choices is empty there).
    usage: Usage | None = None


class ModelCard(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(msgspec.Struct, kw_only=True, frozen=True):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: Literal["ok", "loading", "failed"]
    model: str
    engine: str
    error: str | None = None
