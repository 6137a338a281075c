"""CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT on the gateway, served over real HTTP.

Without them the routes are open and unlimited: every other test of the gateway runs that way.
The keys and the limit's form are tested once for both services in tests/servicekit/test_access.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.gateway.conftest import ADD, gateway_client, local_settings
from tests.support.fake_llm import FakeLLM
from tests.support.servers import service_process

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


def process_env(fake: FakeLLM, **values: str) -> dict[str, str]:
    """`python -m gateway` against the fake local host, 3 requests a minute per client."""
    return {
        **{k: "" for k in os.environ if k.startswith(("LLM_", "OPENAI_", "DEEPSEEK_", "LOCAL_LLM_"))},
        "LLM_PROVIDER": "local",
        "LOCAL_LLM_BASE_URL": fake.url + "/v1",
        "CODEREVIEW_RATE_LIMIT": "3/minute",
        # FORWARDED_ALLOW_IPS left out: the default is what is tested (uvicorn reads it too).
        **values,
    }


async def statuses(url: str, forwarded: list[str]) -> list[int]:
    """GET /v1/models once for each X-Forwarded-For value, in order."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return [
            (await client.get("/v1/models", headers={"x-forwarded-for": value})).status_code
            for value in forwarded
        ]


async def test_a_client_rotating_x_forwarded_for_is_still_limited(
    local_fake: FakeLLM, service_logs: Path
) -> None:
    # Served as in production (servicekit.serving), where uvicorn's default trusted 127.0.0.1:
    # every made-up address was a new client, and 20,000 requests passed a 3/minute limit.
    with service_process(
        "gateway", process_env(local_fake), service_logs, port_variable="GATEWAY_PORT"
    ) as gw:
        answered = await statuses(gw.url, [f"203.0.113.{n}" for n in range(6)])
    assert answered == [200, 200, 200, 429, 429, 429]


async def test_behind_a_configured_proxy_the_forwarded_address_is_the_client(
    local_fake: FakeLLM, service_logs: Path
) -> None:
    env = process_env(local_fake, FORWARDED_ALLOW_IPS="127.0.0.1")
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as gw:
        one = await statuses(gw.url, ["203.0.113.7"] * 4)
        other = await statuses(gw.url, ["203.0.113.8"])
        # The proxy appends what it saw; what the client put before it is not the client.
        prepended = await statuses(gw.url, ["198.51.100.1, 203.0.113.7"])
        # An IPv6 client holds its whole /64: rotating inside it is one client.
        same_64 = await statuses(gw.url, ["2001:db8::1", "2001:db8::2", "2001:db8::3:4", "2001:db8::ffff"])
        next_64 = await statuses(gw.url, ["2001:db8:0:1::1"])
    assert one == [200, 200, 200, 429]
    assert other == [200]
    assert prepended == [429]
    assert same_64 == [200, 200, 200, 429]
    assert next_64 == [200]
