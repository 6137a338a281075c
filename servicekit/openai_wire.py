"""OpenAI's chat completion wire shapes, once, for every service that writes or reads them.

model_host and the gateway write completions, chunks and model lists in these shapes (the
`openai` package parses them into its own types); the gateway reads providers' completions and
the analyzer reads the gateway's with `CompletionRead`, which keeps only what they use.
The request side is not here on purpose: model_host validates a whole request strictly
(`model_host.schemas`, unknown keys are a 400), while the gateway reads only what it routes on and
forwards the rest untouched (`gateway.schemas.ChatRequest`): two readings of one shape, each
what its service promises.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

FinishReason = Literal["stop", "length"]


class Usage(msgspec.Struct, kw_only=True, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(msgspec.Struct, kw_only=True, frozen=True):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(msgspec.Struct, kw_only=True, frozen=True):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason = "stop"


class ChatCompletion(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    # Left out unless set (the gateway sets it to None, as OpenAI sends it; model_host never has).
    system_fingerprint: str | UnsetType | None = UNSET


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
    # Left out unless set: model_host sends `null`, then the usage on the extra last chunk asked
    # for with stream_options.include_usage (whose choices are empty), as OpenAI does.
    usage: Usage | UnsetType | None = UNSET


class ModelCard(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    # Plain strings: the gateway also reads providers' model lists with these, as they are.
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(msgspec.Struct, kw_only=True, frozen=True):
    object: str = "list"
    data: list[ModelCard]


# -- reading someone else's completion: only what is used, everything else ignored -------------


class CompletionMessage(msgspec.Struct):
    content: str | None = None


class CompletionChoice(msgspec.Struct):
    message: CompletionMessage


class CompletionRead(msgspec.Struct):
    choices: list[CompletionChoice]
    usage: Usage | None = None

    def content(self) -> str | None:
        """The first choice's message content (None: no choice, or no content)."""
        return self.choices[0].message.content if self.choices else None
