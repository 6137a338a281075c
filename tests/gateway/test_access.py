"""CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT on the gateway, served over real HTTP.

Without them the routes are open and unlimited: every other test of the gateway runs that way.
The keys and the limit's form are tested once for both services in tests/servicekit/test_access.py.
"""

from __future__ import annotations

from tests.gateway.conftest import ADD, gateway_client, local_settings
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


async def test_any_of_the_keys_is_let_in_and_health_metrics_and_schema_need_none(local_fake: FakeLLM) -> None:
    async with gateway_client(local_settings(local_fake, codereview_api_keys=KEYS)) as client:
        reviewed = await client.post(
            "/analyze", json={"function_code": ADD}, headers={"Authorization": "Bearer gw-key-two-4567"}
        )
        health = await client.get("/health")
        ready = await client.get("/health/ready")
        schema = await client.get("/schema/openapi.json")
        metrics = await client.get("/metrics")
    assert reviewed.status_code == 200, reviewed.text
    assert list(reviewed.json()) == ["suggestions"]
    assert (health.status_code, ready.status_code, schema.status_code) == (200, 200, 200)
    assert metrics.status_code == 200
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
