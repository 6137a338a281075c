"""Retries with backoff and Retry-After, timeouts, fallback, and failures that name the provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from servicekit.retry_after import retry_after_seconds
from tests.gateway.conftest import ADD, gateway_client, local_settings, openai_settings
from tests.support.fake_llm import FakeLLM, Reply, completion, error_reply, review_reply

TYPE_HINTS = "Add type hints to the parameters a and b and a return type to add."
DOCSTRING = "Add a docstring to add: what it does, takes and returns."


async def test_429_and_503_are_retried_honouring_retry_after(openai_fake: FakeLLM) -> None:
    openai_fake.script(
        "/chat/completions",
        error_reply(429, "slow down", retry_after="0"),
        error_reply(503, "busy"),
        review_reply("Reject booleans, they are ints."),
    )
    async with gateway_client(openai_settings(openai_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert response.json()["suggestions"][0] == "Reject booleans, they are ints."
    assert len(openai_fake.sent("/chat/completions")) == 3


async def test_an_upstream_failing_for_good_is_a_502_naming_the_provider(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", *[error_reply(500)] * 3)
    async with gateway_client(openai_settings(openai_fake, llm_max_retries=2)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "message": "openai failed: HTTP 500 (after 3 attempts)",
            "type": "upstream_error",
            "provider": "openai",
        }
    }
    assert len(openai_fake.sent("/chat/completions")) == 3


async def test_a_retry_after_beyond_the_limit_fails_at_once(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", error_reply(429, retry_after="3600"))
    async with gateway_client(openai_settings(openai_fake, llm_retry_after_max=30)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "openai answered HTTP 429 and asks to retry after 3600s"
    assert len(openai_fake.sent("/chat/completions")) == 1


async def test_a_slow_upstream_is_a_504_naming_the_provider(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", Reply(delay=2.0, body=b"{}"))
    async with gateway_client(openai_settings(openai_fake, llm_read_timeout=0.3)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 504
    assert response.json()["error"] == {
        "message": "openai did not answer within 0.3s",
        "type": "upstream_timeout",
        "provider": "openai",
    }


async def test_an_unreachable_upstream_is_a_502(local_fake: FakeLLM) -> None:
    settings = local_settings(local_fake, local_llm_base_url="http://127.0.0.1:9/v1", local_llm_model="m")
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert (
        response.json()["error"]["message"]
        == "local failed: unreachable (Cannot connect to host 127.0.0.1:9 ssl:default "
        "[Connect call failed ('127.0.0.1', 9)]) (after 3 attempts)"
    )


async def test_a_rejected_key_is_a_502_and_not_retried(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", error_reply(401, "bad key"))
    async with gateway_client(openai_settings(openai_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "openai rejected the gateway's API key (HTTP 401)"
    assert len(openai_fake.requests) == 1


async def test_the_fallback_answers_when_the_provider_fails(
    openai_fake: FakeLLM, local_fake: FakeLLM
) -> None:
    openai_fake.script("/chat/completions", error_reply(503), error_reply(503))
    local_fake.script("/chat/completions", review_reply("Say what happens with strings."))
    settings = openai_settings(
        openai_fake, llm_fallback="local", llm_max_retries=1, local_llm_base_url=local_fake.url + "/v1"
    )
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert response.json()["suggestions"] == ["Say what happens with strings.", TYPE_HINTS, DOCSTRING]
    assert len(openai_fake.sent("/chat/completions")) == 2
    assert len(local_fake.sent("/chat/completions")) == 1


async def test_a_failed_chain_names_every_provider(openai_fake: FakeLLM, local_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", error_reply(500))
    local_fake.script("/chat/completions", Reply(delay=2.0))
    settings = openai_settings(
        openai_fake,
        llm_fallback="local",
        llm_max_retries=0,
        llm_read_timeout=0.3,
        local_llm_base_url=local_fake.url + "/v1",
        local_llm_model="m",
    )
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 504
    assert response.json()["error"] == {
        "message": "openai failed: HTTP 500 (after 1 attempt); local did not answer within 0.3s",
        "type": "upstream_timeout",
        "provider": "local",
    }


async def test_sloppy_output_is_retried_once_then_the_checks_still_answer(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", completion("Sure! I will review it."), completion("LGTM"))
    async with gateway_client(openai_settings(openai_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert response.json() == {"suggestions": [TYPE_HINTS, DOCSTRING]}
    assert len(openai_fake.sent("/chat/completions")) == 2


async def test_sloppy_output_is_repaired_without_a_retry(openai_fake: FakeLLM) -> None:
    sloppy = (
        'Here you go:\n```json\n{"suggestions": ["**Reject** `bool` inputs, see [docs](https://x.y)."]}\n```'
    )
    openai_fake.script("/chat/completions", completion(sloppy))
    async with gateway_client(openai_settings(openai_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.json()["suggestions"][0] == "Reject bool inputs, see docs."
    assert len(openai_fake.sent("/chat/completions")) == 1


async def test_a_body_that_is_no_chat_completion_is_a_502(openai_fake: FakeLLM) -> None:
    openai_fake.script("/chat/completions", Reply(body=b"<html>proxy error</html>"))
    async with gateway_client(openai_settings(openai_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "openai answered something that is not a chat completion"


async def test_bytes_from_the_provider_that_are_not_utf_8_are_its_502_never_the_callers_400(
    openai_fake: FakeLLM, local_fake: FakeLLM
) -> None:
    # msgspec raises UnicodeDecodeError, not DecodeError, for invalid UTF-8 inside a JSON string.
    broken = (
        b'{"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": '
        b'[{"index": 0, "message": {"role": "assistant", "content": "\xff"}, "finish_reason": "stop"}]}'
    )
    openai_fake.script("/chat/completions", Reply(body=broken))
    openai_fake.script("/models", Reply(body=b'{"object": "list", "data": [{"id": "\xff"}]}'))
    # The local host has no model configured: the gateway asks its /models which one it serves.
    local_fake.script("/models", Reply(body=b'{"object": "list", "data": [{"id": "\xc3"}]}'))
    async with gateway_client(openai_settings(openai_fake)) as client:
        review = await client.post("/analyze", json={"function_code": ADD})
        models = await client.get("/v1/models")
    async with gateway_client(local_settings(local_fake)) as client:
        local = await client.post("/analyze", json={"function_code": ADD})
    assert review.status_code == 502, review.text
    assert review.json()["error"]["message"] == "openai answered something that is not a chat completion"
    assert models.status_code == 502, models.text
    assert models.json()["error"]["message"] == "openai /models answered no model list"
    assert local.status_code == 502, local.text
    assert "local: /models answered HTTP 200 without a model list" in local.json()["error"]["message"]


async def test_a_client_error_from_the_provider_is_a_502_on_review_and_passed_through_otherwise(
    openai_fake: FakeLLM,
) -> None:
    openai_fake.script(
        "/chat/completions", error_reply(400, "context too long"), error_reply(404, "no such model")
    )
    async with gateway_client(openai_settings(openai_fake)) as client:
        review = await client.post("/analyze", json={"function_code": ADD})
        passthrough = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-nope", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert review.status_code == 502
    assert (
        review.json()["error"]["message"]
        == "openai refused the review request: HTTP 400 (refused the request)"
    )
    assert passthrough.status_code == 404
    assert passthrough.json() == {"error": {"message": "no such model", "type": "fake_error"}}


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
