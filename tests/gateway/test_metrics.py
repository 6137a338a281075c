"""GET /metrics on a real gateway: requests per route and status, reviews by provider/outcome/cache."""

from __future__ import annotations

from tests.gateway.conftest import ADD, gateway_client, local_settings
from tests.support.fake_llm import FakeLLM, completion, error_reply, review_reply
from tests.support.metrics import sample, scrape


async def test_a_review_counts_by_provider_outcome_cache_and_tokens(local_fake: FakeLLM) -> None:
    local_fake.script("/chat/completions", review_reply("Reject booleans, they are ints."))
    async with gateway_client(local_settings(local_fake)) as client:
        before = await scrape(client)
        assert (await client.post("/analyze", json={"function_code": ADD})).status_code == 200
        # The same code again: answered from the cache, no model call.
        assert (await client.post("/analyze", json={"function_code": ADD})).status_code == 200
        assert (await client.post("/analyze", json={"function_code": ""})).status_code == 422
        after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("gateway_reviews_total", provider="local", outcome="ok", cached="false") == 1
    assert grew("gateway_reviews_total", provider="local", outcome="ok", cached="true") == 1
    # fake_llm.completion reports 11 prompt and 7 completion tokens.
    assert grew("gateway_model_tokens_total", provider="local", direction="in") == 11
    assert grew("gateway_model_tokens_total", provider="local", direction="out") == 7
    route = {"app_name": "gateway", "method": "POST", "path": "/analyze"}
    assert grew("codereview_requests_total", status_code="200", **route) == 2
    assert grew("codereview_requests_total", status_code="422", **route) == 1
    assert grew("codereview_request_duration_seconds_count", **route) == 3
    # The scrape itself is not counted.
    assert sample(after, "codereview_requests_total", path="/metrics") == 0


async def test_a_failed_review_counts_as_failed_with_its_provider(local_fake: FakeLLM) -> None:
    local_fake.script("/chat/completions", *[error_reply(500)] * 3)
    code = "def sub(a, b): return a - b"
    async with gateway_client(local_settings(local_fake)) as client:
        before = await scrape(client)
        assert (await client.post("/analyze", json={"function_code": code})).status_code == 502
        after = await scrape(client)
    labels = {"provider": "local", "outcome": "failed", "cached": "false"}
    assert (
        sample(after, "gateway_reviews_total", **labels) - sample(before, "gateway_reviews_total", **labels)
        == 1
    )
    route = {"app_name": "gateway", "path": "/analyze", "status_code": "502"}
    assert (
        sample(after, "codereview_requests_total", **route)
        - sample(before, "codereview_requests_total", **route)
        == 1
    )
    errors = "codereview_requests_error_total"
    assert sample(after, errors, **route) - sample(before, errors, **route) == 1


async def test_metrics_off_serves_no_metrics_page(local_fake: FakeLLM) -> None:
    async with gateway_client(local_settings(local_fake, metrics_enabled=False)) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_a_review_without_usable_model_output_counts_as_degraded(local_fake: FakeLLM) -> None:
    # Asked twice (one retry for an unreadable answer), unreadable both times.
    local_fake.script("/chat/completions", completion("no idea"), completion("still no idea"))
    code = "def mul(a, b): return a * b"
    async with gateway_client(local_settings(local_fake)) as client:
        before = await scrape(client)
        assert (await client.post("/analyze", json={"function_code": code})).status_code == 200
        after = await scrape(client)
    labels = {"provider": "local", "outcome": "degraded", "cached": "false"}
    assert (
        sample(after, "gateway_reviews_total", **labels) - sample(before, "gateway_reviews_total", **labels)
        == 1
    )
    # Both answers' tokens count: the model was asked twice.
    out = {"provider": "local", "direction": "out"}
    assert (
        sample(after, "gateway_model_tokens_total", **out)
        - sample(before, "gateway_model_tokens_total", **out)
        == 14
    )
