"""The OpenAI request shape model_host reads (the subset it implements), as msgspec Structs; the
response shapes it writes are servicekit.openai_wire's, shared with the gateway.

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


class Health(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: Literal["ok", "loading", "failed"]
    model: str
    engine: str
    error: str | None = None
