"""Each provider gets exactly the request it expects: URL, key, model, structured output."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tests.gateway.conftest import ADD, gateway_client, local_settings, make_settings, openai_settings
from tests.support.fake_llm import FakeLLM, completion, error_reply, review_reply

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "code_review",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"suggestions": {"type": "array", "items": {"type": "string"}}},
            "required": ["suggestions"],
            "additionalProperties": False,
        },
    },
}


# model_host enforces sizes by grammar, so its schema bounds the answer (8: REVIEW_MAX_SUGGESTIONS).
BOUNDED_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "code_review",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "suggestions": {"type": "array", "items": {"type": "string", "maxLength": 240}, "maxItems": 8}
            },
            "required": ["suggestions"],
            "additionalProperties": False,
        },
    },
}


def code_between_markers(user_content: str) -> str:
    marker = re.search(r"<<<FUNCTION-[0-9a-f]{16}>>>", user_content)
    assert marker is not None
    parts = user_content.split(marker.group(0))
    assert len(parts) == 3, "the marker must fence the code exactly once"
    return parts[1].strip("\n")


async def test_openai_gets_its_url_key_model_and_strict_json_schema(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", review_reply("Guard against inputs that are not numbers."))
    async with gateway_client(openai_settings(openai_fake, openai_model="gpt-4o-mini")) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert response.json() == {
        "suggestions": [
            "Guard against inputs that are not numbers.",
            "Add type hints to the parameters a and b and a return type to add.",
            "Add a docstring to add: what it does, takes and returns.",
        ]
    }
    [sent] = openai_fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-openai-secret"
    body = sent.json()
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == SCHEMA_FORMAT
    assert body["max_completion_tokens"] == 300
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert code_between_markers(body["messages"][1]["content"]) == ADD


async def test_deepseek_gets_json_object_and_the_word_json_and_empty_content_is_retried(
    deepseek_fake: FakeLLM,
) -> None:
    deepseek_fake.script("/chat/completions", completion(""), review_reply("Name it for what it adds."))
    settings = make_settings(
        llm_provider="deepseek",
        deepseek_api_key="sk-deepseek-secret",
        deepseek_base_url=deepseek_fake.url,
        deepseek_model="deepseek-chat",
    )
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert response.json()["suggestions"][0] == "Name it for what it adds."
    first, second = deepseek_fake.requests
    for sent in (first, second):
        assert (sent.method, sent.path) == ("POST", "/chat/completions")
        assert sent.headers["authorization"] == "Bearer sk-deepseek-secret"
        body = sent.json()
        assert body["model"] == "deepseek-chat"
        assert body["response_format"] == {"type": "json_object"}
        assert body["max_tokens"] == 300
        assert "json" in body["messages"][1]["content"].lower()


async def test_local_gets_json_schema_no_key_and_the_model_it_serves(local_fake: FakeLLM) -> None:
    async with gateway_client(local_settings(local_fake)) as client:
        first = await client.post("/analyze", json={"function_code": ADD})
        second = await client.post("/analyze", json={"function_code": ADD + "\n"})
    assert first.status_code == second.status_code == 200
    paths = [(r.method, r.path) for r in local_fake.requests]
    # The served model is asked once, then remembered.
    assert paths == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions"),
    ]
    assert all("authorization" not in r.headers for r in local_fake.requests)
    body = local_fake.requests[1].json()
    assert body["model"] == "qwen2.5-1.5b-instruct"
    assert body["response_format"] == BOUNDED_SCHEMA_FORMAT


async def test_a_key_only_goes_to_its_own_provider(openai_fake: FakeLLM, local_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", error_reply(500))  # openai fails, the local fallback answers
    settings = openai_settings(
        openai_fake, llm_fallback="local", local_llm_base_url=local_fake.url + "/v1", llm_max_retries=0
    )
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
        ready = await client.get("/health/ready")
    assert response.status_code == 200
    assert ready.json() == {"status": "ready", "providers": {"openai": "ok", "local": "ok"}}
    assert [r.headers["authorization"] for r in openai_fake.requests] == ["Bearer sk-openai-secret"] * 2
    assert [r.path for r in local_fake.requests] == ["/v1/models", "/v1/chat/completions", "/v1/models"]
    for sent in local_fake.requests:
        assert "authorization" not in sent.headers
        assert b"sk-openai-secret" not in sent.body


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"llm_provider": "openai"}, "OPENAI_API_KEY"),
        ({"llm_provider": "deepseek"}, "DEEPSEEK_API_KEY"),
        ({"llm_provider": "local", "llm_fallback": "deepseek"}, "DEEPSEEK_API_KEY"),
        ({"llm_provider": "openai", "openai_api_key": "  "}, "OPENAI_API_KEY"),
    ],
)
def test_a_missing_key_is_refused_naming_the_variable(values: dict[str, str], variable: str) -> None:
    with pytest.raises(ValidationError, match=variable):
        make_settings(**values)


def test_an_unknown_fallback_is_refused() -> None:
    with pytest.raises(ValidationError, match="LLM_FALLBACK names unknown provider 'anthropic'"):
        make_settings(llm_provider="local", llm_fallback="anthropic")
    assert make_settings(llm_provider="local", llm_fallback=" Local , ").provider_chain == ["local"]


async def test_the_key_is_never_in_error_bodies(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", completion(None))
    openai_fake.script("/models", completion(None))
    async with gateway_client(openai_settings(openai_fake)) as client:
        models = await client.get("/v1/models")
    assert models.status_code == 502
    assert "sk-openai-secret" not in models.text
    assert json.loads(models.text)["error"]["provider"] == "openai"


def test_an_empty_variable_means_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_BASE_URL",
        "LLM_CA_BUNDLE",
        "LOCAL_LLM_SSH_KEY",
        "GATEWAY_PORT",
        "LOCAL_LLM_SSH_HOST",
    ):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.llm_ca_bundle is None
    assert settings.local_llm_ssh_key is None
    assert settings.gateway_port == 8001
    assert settings.local_llm_ssh_host is None
