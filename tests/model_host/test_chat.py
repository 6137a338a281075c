"""Turning an OpenAI request into a Generation, and every way a request is refused before it queues."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from model_host.chat import prepare_job
from model_host.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    UnsupportedParameterError,
)
from model_host.generation import Generation
from model_host.schemas import ChatCompletionRequest
from tests.model_host.fakes import ScriptedEngine

MODEL = "tiny"


def body(**fields: Any) -> bytes:
    request: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    request.update(fields)
    return json.dumps(request).encode()


def prepare(raw: bytes, engine: ScriptedEngine | None = None, default_max_tokens: int = 8) -> Generation:
    return prepare_job(
        msgspec.json.decode(raw, type=ChatCompletionRequest),
        engine or ScriptedEngine(),
        served_model=MODEL,
        default_max_tokens=default_max_tokens,
    )


def test_a_plain_request_becomes_a_job_with_openai_defaults() -> None:
    job = prepare(body())
    assert job.prompt_tokens == [ord(c) for c in "<user>hi<assistant>"]
    assert job.max_tokens == 8
    assert job.stop == ["<end>"]
    assert (job.sampling.temperature, job.sampling.top_p, job.sampling.seed) == (1.0, 1.0, None)
    assert job.grammar is None


def test_sampling_parameters_and_stop_strings_are_passed_on() -> None:
    job = prepare(body(temperature=0, top_p=0.5, seed=7, stop="\n\n", max_tokens=3, presence_penalty=0.5))
    assert (job.sampling.temperature, job.sampling.top_p, job.sampling.seed) == (0.0, 0.5, 7)
    assert job.sampling.presence_penalty == 0.5
    assert job.stop == ["\n\n", "<end>"]
    assert job.max_tokens == 3
    assert prepare(body(stop=["a", "b"], max_completion_tokens=5)).stop == ["a", "b", "<end>"]
    assert prepare(body(max_completion_tokens=5)).max_tokens == 5


def test_developer_messages_are_system_messages_and_text_parts_are_joined() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
    ]
    job = prepare(body(messages=messages))
    assert job.prompt_tokens == [ord(c) for c in "<system>be brief<user>ab<assistant><assistant>"]


def test_without_max_tokens_the_default_is_capped_by_the_room_left_in_the_context() -> None:
    engine = ScriptedEngine(context_size=30)  # the prompt is 19 tokens: 11 left
    assert prepare(body(), engine, default_max_tokens=100).max_tokens == 11


def test_an_unknown_role_is_named() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        prepare(body(messages=[{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}]))
    assert refused.value.param == "messages[1].role"
    assert "'wizard'" in refused.value.message
    assert "system, developer, user, assistant" in refused.value.message


def test_tool_messages_are_an_unknown_role_here() -> None:
    with pytest.raises(InvalidRequestError, match="'tool'"):
        prepare(body(messages=[{"role": "tool", "content": "42"}]))


def test_a_user_message_without_content_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"messages\[0\] \(user\) has no content"):
        prepare(body(messages=[{"role": "user", "content": None}]))


def test_image_parts_are_unsupported() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(UnsupportedParameterError) as refused:
        prepare(body(messages=[{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]))
    assert refused.value.param == "messages[0].content[1].type"
    assert "text parts only" in refused.value.message


def test_another_model_name_is_404() -> None:
    with pytest.raises(ModelNotFoundError) as refused:
        prepare(body(model="gpt-4o"))
    assert refused.value.status_code == 404
    assert "'gpt-4o'" in refused.value.message
    assert "'tiny'" in refused.value.message


@pytest.mark.parametrize(("fields", "param"), [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")])
def test_unsupported_options_are_refused_not_ignored(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameterError) as refused:
        prepare(body(**fields))
    assert refused.value.param == param


def test_a_prompt_that_fills_the_context_is_refused_with_its_length_and_the_limit() -> None:
    with pytest.raises(ContextLengthExceededError) as refused:
        prepare(body(messages=[{"role": "user", "content": "x" * 60}]))
    message = refused.value.message
    assert "maximum context length is 64 tokens" in message
    assert "resulted in 77 tokens" in message
    assert refused.value.code == "context_length_exceeded"


def test_max_tokens_beyond_the_context_is_refused_with_the_numbers() -> None:
    with pytest.raises(ContextLengthExceededError) as refused:
        prepare(body(max_tokens=46))  # 19 prompt tokens + 46 > 64
    assert "you requested 65 tokens (19 in the messages, 46 in the completion)" in refused.value.message
    assert refused.value.param == "max_tokens"
    assert prepare(body(max_tokens=45)).max_tokens == 45


def test_json_object_and_json_schema_become_grammars() -> None:
    assert "object" in (prepare(body(response_format={"type": "json_object"})).grammar or "")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}}
    grammar = prepare(body(response_format=response_format)).grammar or ""
    assert '"\\"ok\\""' in grammar
    assert prepare(body(response_format={"type": "text"})).grammar is None


def test_json_schema_without_a_schema_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"needs json_schema\.schema"):
        prepare(body(response_format={"type": "json_schema", "json_schema": {"name": "r"}}))


def test_a_schema_the_grammar_converter_cannot_handle_is_refused() -> None:
    schema = {"$ref": "https://example.com/elsewhere.json"}
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    with pytest.raises(InvalidRequestError, match="cannot be enforced"):
        prepare(body(response_format=response_format))


def test_an_engine_without_grammars_refuses_json_formats() -> None:
    with pytest.raises(UnsupportedParameterError, match="MODEL_ENGINE=llama_cpp"):
        prepare(body(response_format={"type": "json_object"}), ScriptedEngine(supports_grammar=False))


def test_a_small_integer_range_is_enforced_as_its_values() -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 3}},
        "required": ["score"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    grammar = prepare(body(response_format=response_format)).grammar or ""
    assert '"1" | "2" | "3"' in grammar


@pytest.mark.parametrize(
    ("schema", "where", "keyword"),
    [
        ({"type": "integer", "minimum": 0}, "schema", "minimum"),
        ({"type": "number", "minimum": 0, "maximum": 1}, "schema", "minimum"),
        ({"type": "integer", "minimum": 0, "maximum": 10**6}, "schema", "minimum"),
        (
            {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}},
            "schema.properties.tags",
            "uniqueItems",
        ),
        ({"type": "array", "items": {"not": {"type": "null"}}}, "schema.items", "not"),
        (
            {"anyOf": [{"type": "string"}, {"type": "integer", "multipleOf": 2}]},
            "schema.anyOf[1]",
            "multipleOf",
        ),
    ],
)
def test_constraints_the_grammar_cannot_enforce_are_refused(
    schema: dict[str, Any], where: str, keyword: str
) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    with pytest.raises(UnsupportedParameterError) as refused:
        prepare(body(response_format=response_format))
    assert f"response_format.json_schema.{where} uses {keyword!r}" in refused.value.message


def test_a_property_named_like_a_keyword_is_just_a_property() -> None:
    schema = {"type": "object", "properties": {"minimum": {"type": "string"}, "not": {"type": "boolean"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    assert prepare(body(response_format=response_format)).grammar


def test_strings_in_schema_grammars_exclude_raw_control_characters() -> None:
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "maxLength": 5}, "t": {"type": "string"}},
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    grammar = prepare(body(response_format=response_format)).grammar or ""
    assert 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |' in grammar
    assert 'char ::= [^"\\\\] |' not in grammar
