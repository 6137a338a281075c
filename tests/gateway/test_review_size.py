"""A prompt for each model size: a model too small to add anything is not asked; the others are."""

from __future__ import annotations

import pytest

from gateway.prompt import CHECKS_ONLY_MAX_BILLIONS, asks_the_model, model_billions
from tests.gateway.conftest import ADD, gateway_client, local_settings
from tests.support.fake_llm import FakeLLM, review_reply

TYPE_HINTS = "Add type hints to the parameters a and b and a return type to add."
DOCSTRING = "Add a docstring to add: what it does, takes and returns."


@pytest.mark.parametrize(
    ("model", "billions"),
    [
        ("SmolLM2-135M-Instruct.Q4_1", 0.135),
        ("smollm2-135m-instruct", 0.135),
        ("Qwen3-0.6B-Q8_0", 0.6),
        ("qwen2.5-1.5b-instruct", 1.5),
        ("Llama-3.2-1B-Instruct", 1.0),
        ("Qwen2.5-Coder-7B-Instruct.Q4_K_M", 7.0),
        ("gpt-4o-mini", None),
        ("deepseek-chat", None),
        ("phi-3-mini-4k-instruct", None),
    ],
)
def test_the_size_a_model_id_states(model: str, billions: float | None) -> None:
    assert model_billions(model) == billions
    assert asks_the_model(model) is (billions is None or billions > CHECKS_ONLY_MAX_BILLIONS)


async def test_the_bundled_135m_model_is_not_asked_and_the_review_is_the_checks(local_fake: FakeLLM) -> None:
    local_fake.models = ["SmolLM2-135M-Instruct.Q4_1"]
    local_fake.script("/chat/completions", review_reply("find_user_by_name"))
    async with gateway_client(local_settings(local_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert response.json() == {"suggestions": [TYPE_HINTS, DOCSTRING]}
    assert local_fake.sent("/chat/completions") == []


async def test_a_larger_local_model_is_asked_with_the_full_prompt(local_fake: FakeLLM) -> None:
    local_fake.models = ["Qwen2.5-Coder-7B-Instruct.Q4_K_M"]
    local_fake.script("/chat/completions", review_reply("Reject booleans, they are ints."))
    async with gateway_client(local_settings(local_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.json() == {"suggestions": ["Reject booleans, they are ints.", TYPE_HINTS, DOCSTRING]}
    (sent,) = local_fake.sent("/chat/completions")
    body = sent.json()
    assert body["model"] == "Qwen2.5-Coder-7B-Instruct.Q4_K_M"
    assert body["messages"][0]["role"] == "system"
    assert "senior Python reviewer" in body["messages"][0]["content"]
    assert ADD in body["messages"][1]["content"]
