"""CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT on the gateway, served over real HTTP.

Without them the routes are open and unlimited: every other test of the gateway runs that way.
"""

from __future__ import annotations

import pydantic
import pytest

from gateway.access import ApiKeys
from tests.gateway.conftest import ADD, gateway_client, local_settings, make_settings
from tests.support.fake_llm import FakeLLM

KEYS = "gw-key-one-0123,gw-key-two-4567"


async def test_keys_turn_away_a_request_without_one_or_with_a_wrong_one(local_fake: FakeLLM) -> None:
    async with gateway_client(local_settings(local_fake, codereview_api_keys=KEYS)) as client:
        missing = await client.post("/analyze", json={"function_code": ADD})
        wrong = await client.post(
            "/analyze", json={"function_code": ADD}, headers={"Authorization": "Bearer gw-key-one-012"}
        )
        models = await client.get("/v1/models", headers={"Authorization": "Basic gw-key-one-0123"})
        chat = await client.post(
            "/v1/chat/completions",
            json={"model": "code-review", "messages": [{"role": "user", "content": ADD}]},
            headers={"x-request-id": "denied-1"},
        )
    for response in (missing, wrong, models, chat):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "authentication_error"
    assert "requires an API key" in missing.json()["error"]["message"]
    assert "missing or wrong API key" in wrong.json()["error"]["message"]
    assert chat.headers["x-request-id"] == "denied-1"
    # Nothing reached the provider.
    assert local_fake.requests == []


async def test_any_of_the_keys_is_let_in_and_health_and_schema_need_none(local_fake: FakeLLM) -> None:
    async with gateway_client(local_settings(local_fake, codereview_api_keys=KEYS)) as client:
        reviewed = await client.post(
            "/analyze", json={"function_code": ADD}, headers={"Authorization": "Bearer gw-key-two-4567"}
        )
        health = await client.get("/health")
        ready = await client.get("/health/ready")
        schema = await client.get("/schema/openapi.json")
    assert reviewed.status_code == 200, reviewed.text
    assert list(reviewed.json()) == ["suggestions"]
    assert (health.status_code, ready.status_code, schema.status_code) == (200, 200, 200)
    # The caller's key is the gateway's business: the provider never sees it.
    assert all("gw-key" not in str(r.headers) for r in local_fake.requests)


async def test_a_rate_limit_answers_429_with_retry_after_per_client(local_fake: FakeLLM) -> None:
    settings = local_settings(local_fake, codereview_api_keys=KEYS, codereview_rate_limit="2/minute")
    one = {"Authorization": "Bearer gw-key-one-0123"}
    async with gateway_client(settings) as client:
        allowed = [(await client.get("/v1/models", headers=one)).status_code for _ in range(2)]
        refused = await client.get("/v1/models", headers=one)
        other = await client.get("/v1/models", headers={"Authorization": "Bearer gw-key-two-4567"})
        guesses = [
            (await client.get("/v1/models", headers={"Authorization": f"Bearer guess-{n}"})).status_code
            for n in range(3)
        ]
        health = [(await client.get("/health")).status_code for _ in range(3)]
    assert allowed == [200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "CODEREVIEW_RATE_LIMIT" in refused.json()["error"]["message"]
    assert refused.headers["x-request-id"]
    assert other.status_code == 200
    # Wrong keys count against the sender's address, so guessing is limited too.
    assert guesses == [401, 401, 429]
    assert health == [200, 200, 200]


@pytest.mark.parametrize("value", ["60", "60/minutes", "0/minute", "1001/second", "sixty/minute"])
def test_a_malformed_rate_limit_is_refused_at_start(value: str) -> None:
    with pytest.raises(
        pydantic.ValidationError,
        match=r"must look like 60/minute \(second\|minute\|hour\|day, 1 to 1000 requests\)",
    ):
        make_settings(codereview_rate_limit=value)


def test_settings_read_the_limit_and_keys_and_an_empty_value_means_off() -> None:
    configured = make_settings(codereview_api_keys=" k-1 ,, k-2 ", codereview_rate_limit="600/minute")
    assert configured.api_keys == ["k-1", "k-2"]
    assert configured.rate_limit == ("minute", 600)
    assert "k-1" not in repr(configured)
    off = make_settings(codereview_api_keys="", codereview_rate_limit="")
    assert off.api_keys == []
    assert off.rate_limit is None


def test_api_keys_match_only_a_whole_bearer_key() -> None:
    keys = ApiKeys(["k-one", "k-two"])
    assert keys.match("Bearer k-two") == 1
    for header in (None, "", "Bearer", "Bearer k-on", "Bearer k-one2", "Token k-one", "k-one"):
        assert keys.match(header) is None
