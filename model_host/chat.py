"""From an OpenAI chat completion request to a `Generation` the engine can run, or a clear 400.

The body's shape is checked by Litestar (the handler's typed `data`, errors.validation_error_handler);
everything else that can be refused is refused here, before the request queues: unknown roles,
non-text content, prompts longer than the context, max_tokens beyond it, response formats the
engine cannot enforce.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2

from model_host.engines import Engine, Sampling
from model_host.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    UnsupportedParameterError,
)
from model_host.generation import Generation
from model_host.schemas import ChatCompletionRequest, Message, ResponseFormat

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _content(message: Message, index: int) -> str:
    if message.content is None:
        if message.role == "assistant":
            return ""
        raise InvalidRequestError(
            f"messages[{index}] ({message.role}) has no content", param=f"messages[{index}].content"
        )
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part_index, part in enumerate(message.content):
        if part.type != "text" or part.text is None:
            raise UnsupportedParameterError(
                f"messages[{index}].content[{part_index}] is of type {part.type!r}: "
                "this model reads text parts only",
                param=f"messages[{index}].content[{part_index}].type",
            )
        texts.append(part.text)
    return "".join(texts)


def chat_messages(messages: list[Message]) -> list[dict[str, str]]:
    """The messages as the chat template wants them.

    Raises InvalidRequestError on an unknown role or missing content.
    """
    converted = []
    for index, message in enumerate(messages):
        role = ROLES.get(message.role)
        if role is None:
            raise InvalidRequestError(
                f"messages[{index}].role is {message.role!r}; expected one of: {', '.join(ROLES)}",
                param=f"messages[{index}].role",
            )
        converted.append({"role": role, "content": _content(message, index)})
    return converted


# JSON Schema keywords that constrain values but that llama-cpp-python's schema-to-grammar
# converter silently ignores: a schema using them could not be *guaranteed*, so it is refused.
UNENFORCEABLE = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "not",
    "if",
    "then",
    "else",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
)
# An integer range this small is enforced as the list of its values.
MAX_INTEGER_RANGE = 1000


def enforceable_schema(schema: Any, path: str = "schema") -> Any:
    """`schema` with bounded integer ranges rewritten as enums, which the grammar can enforce.

    Raises UnsupportedParameterError naming the first keyword (and where) that the grammar would
    silently ignore, so every accepted schema is one the output is guaranteed to match.
    """
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    if (
        schema.get("type") == "integer"
        and isinstance(schema.get("minimum"), int)
        and isinstance(schema.get("maximum"), int)
        and 0 <= schema["maximum"] - schema["minimum"] <= MAX_INTEGER_RANGE
    ):
        low, high = result.pop("minimum"), result.pop("maximum")
        result.pop("type")
        result["enum"] = list(range(low, high + 1))
    for keyword in UNENFORCEABLE:
        if keyword in result:
            raise UnsupportedParameterError(
                f"response_format.json_schema.{path} uses {keyword!r}, which grammar-constrained decoding "
                "cannot enforce here (integers may have minimum and maximum together, at most "
                f"{MAX_INTEGER_RANGE} apart); drop it or check it after the response",
                param="response_format.json_schema.schema",
            )
    for keyword in ("properties", "$defs", "definitions"):
        if isinstance(result.get(keyword), dict):
            result[keyword] = {
                name: enforceable_schema(sub, f"{path}.{keyword}.{name}")
                for name, sub in result[keyword].items()
            }
    for keyword in ("items", "additionalProperties"):
        if isinstance(result.get(keyword), dict):
            result[keyword] = enforceable_schema(result[keyword], f"{path}.{keyword}")
    for keyword in ("items", "prefixItems", "anyOf", "oneOf", "allOf"):
        if isinstance(result.get(keyword), list):
            result[keyword] = [
                enforceable_schema(sub, f"{path}.{keyword}[{index}]")
                for index, sub in enumerate(result[keyword])
            ]
    return result


def grammar_for(response_format: ResponseFormat | None) -> str | None:
    """The GBNF grammar that enforces the response format, or None for free text."""
    if response_format is None or response_format.type == "text":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if response_format.type == "json_object":
        return JSON_GBNF
    if response_format.json_schema is None or response_format.json_schema.schema is None:
        raise InvalidRequestError(
            "response_format of type json_schema needs json_schema.schema",
            param="response_format.json_schema",
        )
    schema = enforceable_schema(response_format.json_schema.schema)
    try:
        grammar: str = json_schema_to_gbnf(json.dumps(schema))
    except (
        Exception
    ) as exc:  # the converter raises bare Exceptions, KeyErrors, ... on schemas it cannot handle
        raise InvalidRequestError(
            f"response_format.json_schema.schema cannot be enforced: {type(exc).__name__}: {exc}",
            param="response_format.json_schema.schema",
        ) from exc
    # llama-cpp-python's converter lets raw control characters (a newline, say) into strings, which
    # makes the JSON invalid; llama.cpp's own converter excludes them. Same rule, fixed.
    return grammar.replace(GRAMMAR_CHAR_RULE, GRAMMAR_CHAR_RULE_FIXED)


GRAMMAR_CHAR_RULE = r'char ::= [^"\\] |'
GRAMMAR_CHAR_RULE_FIXED = r'char ::= [^"\\\x7F\x00-\x1F] |'


def prepare_job(
    request: ChatCompletionRequest, engine: Engine, *, served_model: str, default_max_tokens: int
) -> Generation:
    """Validate the request against the loaded model and build its Generation.

    Raises InvalidRequestError (400, and its subclasses) or ModelNotFoundError (404).
    """
    if request.model != served_model:
        raise ModelNotFoundError(
            f"the model {request.model!r} does not exist here; this server serves {served_model!r}",
            param="model",
        )
    if request.n is not None and request.n != 1:
        raise UnsupportedParameterError(
            "n must be 1: this server generates one choice per request", param="n"
        )
    if request.logprobs:
        raise UnsupportedParameterError("logprobs are not supported by this server", param="logprobs")
    grammar = grammar_for(request.response_format)
    if grammar is not None and not engine.supports_grammar:
        raise UnsupportedParameterError(
            f"response_format {request.response_format.type!r} needs grammar sampling, "  # type: ignore[union-attr]
            f"which the {engine.name} engine does not have; use MODEL_ENGINE=llama_cpp",
            param="response_format",
        )
    messages = chat_messages(request.messages)
    try:
        rendered = engine.render_chat(messages)
    except (ValueError, jinja2.TemplateError) as exc:
        raise InvalidRequestError(
            f"the model's chat template refused these messages: {exc}", param="messages"
        ) from exc
    prompt_tokens = engine.tokenize(rendered.text)
    limit = engine.context_size
    if len(prompt_tokens) >= limit:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
            f"{len(prompt_tokens)} tokens, which leaves no room for the completion. "
            "Please reduce the length of the messages.",
            param="messages",
        )
    requested = request.max_completion_tokens or request.max_tokens
    room = limit - len(prompt_tokens)
    if requested is not None and requested > room:
        name = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{len(prompt_tokens) + requested} tokens ({len(prompt_tokens)} in the messages, "
            f"{requested} in the completion). Please reduce the length of the messages or the {name}.",
            param=name,
        )
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return Generation(
        prompt_tokens=prompt_tokens,
        max_tokens=requested if requested is not None else min(default_max_tokens, room),
        stop=[s for s in [*stop, *rendered.stop] if s],
        sampling=Sampling(
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
        ),
        grammar=grammar,
    )
