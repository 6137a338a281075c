"""A provider that misbehaves on purpose: it echoes the key it was sent, reports negative or huge
token counts, nests its JSON thousands deep, or asks to be retried after -5 or NaN seconds.

Whatever it sends, the review answers what fits (the model's suggestions, the fallback, the checks
alone, or a 502 naming the provider in the gateway's words), never a 500, and its text reaches
neither the caller nor a log line.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from gateway.errors import UpstreamError
from gateway.suggestions import MAX_ITEM_CHARS, MAX_ITEMS, parse_model_output
from servicekit.retry_after import retry_after_seconds
from tests.gateway.conftest import ADD, gateway_client, local_settings, openai_settings
from tests.gateway.raw_http import raw_server
from tests.gateway.test_upstream import answer_once, upstream_for
from tests.support.fake_llm import FakeLLM, Reply, completion, error_reply, review_reply
from tests.support.metrics import sample, scrape

KEY = "sk-Zq8vXw3LmN5pRt7Y"
NESTED = "[" * 6000 + "]" * 6000  # 12 KB; 6 KB of `[` alone is as deep


def pieces(secret: str, size: int = 6) -> list[str]:
    """Every run of `size` characters of `secret`: none of them may show."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_nowhere(secret: str, texts: list[str]) -> None:
    for text in texts:
        shown = [piece for piece in pieces(secret) if piece in text]
        assert not shown, f"{shown[0]!r} of the key in {text!r}"


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return lines


# -- the provider's text stays the provider's -------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            error_reply(400, f"Incorrect API key provided: {KEY}. You can find your API key at ..."),
            "openai refused the review request: HTTP 400 (refused the request)",
        ),
        (
            Reply(status=404, body=f"no model for {KEY}\n\x1b[31mERROR forged".encode()),
            "openai refused the review request: HTTP 404 (no such model or route)",
        ),
        (
            Reply(status=413, body=json.dumps({"detail": KEY}).encode()),
            "openai refused the review request: HTTP 413 (request too large)",
        ),
    ],
)
async def test_a_provider_echoing_the_key_reaches_neither_the_502_nor_any_log_line(
    openai_fake: FakeLLM, caplog: pytest.LogCaptureFixture, reply: Reply, message: str
) -> None:
    caplog.set_level(logging.DEBUG)
    openai_fake.script("/chat/completions", reply)
    async with gateway_client(openai_settings(openai_fake, openai_api_key=KEY)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert response.json() == {"error": {"message": message, "type": "upstream_error", "provider": "openai"}}
    assert_nowhere(KEY, [response.text, *log_lines(caplog)])
    # What the operator gets: the failure in a WARNING line, a masked excerpt at DEBUG.
    assert any(message in line for line in log_lines(caplog))
    assert any("***" in line for line in log_lines(caplog))


async def test_a_failed_chain_says_each_providers_failure_in_the_gateways_words(
    openai_fake: FakeLLM, local_fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    openai_fake.script("/chat/completions", error_reply(400, f"bad key {KEY}"))
    local_fake.script("/chat/completions", *[error_reply(503, f"down, key {KEY}")] * 3)
    settings = openai_settings(
        openai_fake, openai_api_key=KEY, llm_fallback="local", local_llm_base_url=local_fake.url + "/v1"
    )
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 502
    assert response.json()["error"]["message"] == (
        "openai refused the review request: HTTP 400 (refused the request); "
        "local failed: HTTP 503 (after 3 attempts)"
    )
    assert_nowhere(KEY, [response.text, *log_lines(caplog)])


async def test_the_passthrough_still_forwards_the_providers_answer_as_it_is(openai_fake: FakeLLM) -> None:
    # Another model than code-review is the caller's own OpenAI call: its refusal is theirs to read.
    openai_fake.script("/chat/completions", error_reply(400, "context too long"))
    async with gateway_client(openai_settings(openai_fake)) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert response.status_code == 400
    assert response.json() == {"error": {"message": "context too long", "type": "fake_error"}}


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (
            f"SMTP {KEY} READY\r\n\r\n".encode(),
            "openai answered something that is not HTTP: Bad status line: Expected HTTP/, RTSP/ or ICE/",
        ),
        (
            f"HTTP/1.1 {KEY}\r\n\r\n".encode(),
            "openai answered something that is not HTTP: Bad status line: Invalid status code",
        ),
        (
            f"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{KEY}\r\n".encode(),
            "openai answered something that is not HTTP: Invalid character in chunk size",
        ),
    ],
)
async def test_bytes_the_http_parser_refuses_are_not_quoted(sent: bytes, message: str) -> None:
    async with (
        raw_server(answer_once(sent)) as (port, _),
        upstream_for(port, llm_max_retries=0) as (upstream, provider),
    ):
        with pytest.raises(UpstreamError) as raised:
            await upstream.request(provider, "GET", "models")
    assert raised.value.message == message


# -- whatever it sends, never a 500 -------------------------------------------------------------


def completion_with_usage(usage: str) -> Reply:
    body = json.loads(review_reply("Reject booleans, they are ints.").body)
    return Reply(body=json.dumps(body).replace(json.dumps(body["usage"]), usage).encode())


@pytest.mark.parametrize(
    "usage",
    [
        '{"prompt_tokens": -5, "completion_tokens": 7, "total_tokens": 2}',
        '{"prompt_tokens": 11, "completion_tokens": -1, "total_tokens": 10}',
        '{"prompt_tokens": ' + "9" * 400 + ', "completion_tokens": 7, "total_tokens": 7}',
    ],
)
async def test_token_counts_that_no_counter_takes_leave_the_review_and_the_counters_alone(
    local_fake: FakeLLM, usage: str
) -> None:
    local_fake.script("/chat/completions", completion_with_usage(usage))
    async with gateway_client(local_settings(local_fake)) as client:
        before = await scrape(client)
        response = await client.post("/analyze", json={"function_code": ADD})
        after = await scrape(client)
    assert response.status_code == 200, response.text
    assert response.json()["suggestions"][0] == "Reject booleans, they are ints."
    for direction in ("in", "out"):
        name, labels = "gateway_model_tokens_total", {"provider": "local", "direction": direction}
        assert sample(after, name, **labels) >= sample(before, name, **labels)
    # Counted as the model's answer, not a failure: no fallback needed.
    assert len(local_fake.sent("/chat/completions")) == 1


async def test_a_negative_token_count_does_not_cost_the_fallback(
    openai_fake: FakeLLM, local_fake: FakeLLM
) -> None:
    # Before: the counter's ValueError escaped the provider loop as a 500.
    openai_fake.script("/chat/completions", completion_with_usage('{"prompt_tokens": -5}'))
    settings = openai_settings(openai_fake, llm_fallback="local", local_llm_base_url=local_fake.url + "/v1")
    async with gateway_client(settings) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200, response.text
    assert response.json()["suggestions"][0] == "Reject booleans, they are ints."


async def test_a_completion_nested_thousands_deep_is_the_providers_502_and_the_fallback_answers(
    openai_fake: FakeLLM, local_fake: FakeLLM
) -> None:
    nested = Reply(body=b'{"choices": [], "x": ' + NESTED.encode() + b"}")
    openai_fake.script("/chat/completions", nested, nested)
    local_fake.script("/chat/completions", review_reply("Check b is a number."))
    alone = openai_settings(openai_fake)
    chained = openai_settings(openai_fake, llm_fallback="local", local_llm_base_url=local_fake.url + "/v1")
    async with gateway_client(alone) as client:
        failed = await client.post("/analyze", json={"function_code": ADD})
    async with gateway_client(chained) as client:
        fallen_back = await client.post("/analyze", json={"function_code": ADD})
    assert failed.status_code == 502, failed.text
    assert failed.json()["error"] == {
        "message": "openai answered something that is not a chat completion",
        "type": "upstream_error",
        "provider": "openai",
    }
    assert fallen_back.status_code == 200, fallen_back.text
    assert fallen_back.json()["suggestions"][0] == "Check b is a number."


@pytest.mark.parametrize(
    "content",
    [
        NESTED,
        "[" * 6000,
        '{"suggestions": ' * 3000,
        "Here you go: " + "[" * 6000,
        "```json\n" + "[" * 3000 + "\n```",
    ],
)
async def test_model_output_nested_thousands_deep_leaves_the_checks_alone(
    local_fake: FakeLLM, content: str
) -> None:
    local_fake.script("/chat/completions", completion(content), completion(content))
    async with gateway_client(local_settings(local_fake)) as client:
        response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200, response.text
    suggestions = response.json()["suggestions"]
    assert suggestions
    assert all(s.startswith("Add ") for s in suggestions), suggestions  # the checks' own
    assert len(local_fake.sent("/chat/completions")) == 2


@pytest.mark.parametrize("value", ["-5", "NaN", "-inf", "inf", "+3", "1e3", "-0.5"])
def test_a_retry_after_that_is_no_delay_is_unreadable(value: str) -> None:
    assert retry_after_seconds(value) is None


def test_retry_after_still_reads_delta_seconds() -> None:
    assert retry_after_seconds(" 2 ") == 2.0
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds("3600") == 3600.0


@pytest.mark.parametrize("value", ["-5", "NaN"])
async def test_a_retry_after_of_minus_5_or_nan_gets_the_backoff_not_three_tries_at_once(
    openai_fake: FakeLLM, value: str
) -> None:
    openai_fake.script("/chat/completions", *[error_reply(503, retry_after=value)] * 3)
    settings = openai_settings(openai_fake, llm_retry_backoff=0.2, llm_max_retries=2)
    async with gateway_client(settings) as client:
        started = time.monotonic()
        response = await client.post("/analyze", json={"function_code": ADD})
        took = time.monotonic() - started
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "openai failed: HTTP 503 (after 3 attempts)"
    assert len(openai_fake.sent("/chat/completions")) == 3
    # Two waits of the backoff, 0.2 s then 0.4 s (plus jitter): a floor, not a speed measurement.
    assert took >= 0.6


@pytest.mark.alone
async def test_suggestions_that_would_cost_minutes_to_clean_are_cut_first(local_fake: FakeLLM) -> None:
    # 30 KB of `*a `: each `*` opens an emphasis that never closes, and the pattern scans the rest
    # from each one; before the cut it took ~14 s of the event loop (48 KB: 36 s).
    local_fake.script("/chat/completions", review_reply("*a " * 10_000, "Check b is a number."))
    async with gateway_client(local_settings(local_fake)) as client:
        started = time.monotonic()
        response = await client.post("/analyze", json={"function_code": ADD})
        took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert "Check b is a number." in response.json()["suggestions"]
    assert took < 5, took  # a bound that ~14 s broke, not a speed measurement


def test_at_most_max_items_suggestions_of_max_item_chars_come_back() -> None:
    many = json.dumps({"suggestions": [f"Suggestion number {n}." for n in range(10_000)]})
    assert parse_model_output(many) == [f"Suggestion number {n}." for n in range(MAX_ITEMS)]
    long = parse_model_output(json.dumps(["x" * 100_000]))
    assert long == ["x" * MAX_ITEM_CHARS]
    bullets = parse_model_output("\n".join(f"- point {n}" for n in range(1000)))
    assert bullets is not None
    assert len(bullets) == MAX_ITEMS
