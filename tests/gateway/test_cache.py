"""The review cache: one model call per (code, provider, model, prompt version), in memory or NATS KV."""

from __future__ import annotations

import asyncio
import logging
import uuid

import nats
import pytest
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from gateway.cache import CachedReview, MemoryCache, NatsCache, review_key
from gateway.checks import RuffChecker
from gateway.errors import ConfigError
from gateway.prompt import PROMPT_VERSION
from gateway.review import Reviewer, ReviewLimits
from gateway.upstream import Upstream, build_providers
from tests.gateway.conftest import ADD, gateway_client, local_settings
from tests.support.fake_llm import FakeLLM, Reply, completion, review_reply

TYPE_HINTS = "Add type hints to the parameters a and b and a return type to add."
DOCSTRING = "Add a docstring to add: what it does, takes and returns."


async def test_the_same_function_twice_costs_one_model_call(local_fake: FakeLLM) -> None:
    local_fake.script(
        "/chat/completions",
        review_reply("Reject booleans, they are ints."),
        review_reply("Check b is a number."),
    )
    async with gateway_client(local_settings(local_fake)) as client:
        first = await client.post("/analyze", json={"function_code": ADD})
        second = await client.post("/analyze", json={"function_code": ADD})
        via_chat = await client.post(
            "/v1/chat/completions",
            json={"model": "code-review", "messages": [{"role": "user", "content": ADD}]},
        )
        other = await client.post("/analyze", json={"function_code": "def sub(a, b): return a - b"})
    assert first.json() == second.json()
    assert first.json()["suggestions"][0] == "Reject booleans, they are ints."
    assert via_chat.status_code == 200
    assert via_chat.json()["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert other.json()["suggestions"][0] == "Check b is a number."
    assert len(local_fake.sent("/chat/completions")) == 2


async def test_a_review_expires_after_the_ttl(local_fake: FakeLLM) -> None:
    async with gateway_client(local_settings(local_fake, review_cache_ttl=0.2)) as client:
        await client.post("/analyze", json={"function_code": ADD})
        await asyncio.sleep(0.3)
        await client.post("/analyze", json={"function_code": ADD})
    assert len(local_fake.sent("/chat/completions")) == 2


async def test_the_memory_cache_keeps_the_most_recent() -> None:
    cache = MemoryCache(ttl=0, size=2)
    review = CachedReview(suggestions=["x"], provider="local", model="m")
    for key in ("a", "b"):
        await cache.put(key, review)
    assert await cache.get("a") == review  # a is now the most recent
    await cache.put("c", review)
    assert await cache.get("b") is None
    assert await cache.get("a") == review
    assert await cache.get("c") == review


def test_the_key_covers_code_provider_model_prompt_and_limit() -> None:
    key = review_key(ADD, "local", "m", 8)
    assert len(key) == 64
    assert len({key, review_key(ADD + " ", "local", "m", 8), review_key(ADD, "openai", "m", 8)}) == 3
    assert len({key, review_key(ADD, "local", "n", 8), review_key(ADD, "local", "m", 5)}) == 3
    assert PROMPT_VERSION


@pytest.mark.nats
async def test_replicas_share_the_cache_in_nats_kv(local_fake: FakeLLM, nats_url: str) -> None:
    bucket = f"reviews_{uuid.uuid4().hex[:8]}"
    local_fake.script(
        "/chat/completions",
        review_reply("Reject booleans, they are ints."),
        review_reply("Check b is a number."),
    )
    settings = local_settings(local_fake, nats_url=nats_url, review_cache_bucket=bucket, review_cache_ttl=600)
    async with gateway_client(settings) as first:
        one = await first.post("/analyze", json={"function_code": ADD})
    async with gateway_client(settings) as second:
        two = await second.post("/analyze", json={"function_code": ADD})
    assert one.json() == two.json()
    assert one.json()["suggestions"][0] == "Reject booleans, they are ints."
    assert len(local_fake.sent("/chat/completions")) == 1
    connection = await nats.connect(nats_url)
    try:
        kv = await connection.jetstream().key_value(bucket)
        status = await kv.status()
        assert status.ttl == 600
        assert status.values == 1
    finally:
        await connection.close()


async def _stored_keys(kv: KeyValue) -> list[str]:
    """The bucket's keys once there are any: a review is stored just after it is answered."""
    for _ in range(200):
        try:
            return await kv.keys()
        except NoKeysError:
            await asyncio.sleep(0.01)
    raise AssertionError("no review was stored within 2 s")


async def test_an_unreadable_entry_in_nats_is_a_miss_not_an_error(local_fake: FakeLLM, nats_url: str) -> None:
    bucket = f"reviews_{uuid.uuid4().hex[:8]}"
    local_fake.script("/chat/completions", *[review_reply("Check b is a number.")] * 2)
    settings = local_settings(local_fake, nats_url=nats_url, review_cache_bucket=bucket, review_cache_ttl=600)
    async with gateway_client(settings) as client:
        await client.post("/analyze", json={"function_code": ADD})
        connection = await nats.connect(nats_url)
        try:
            kv = await connection.jetstream().key_value(bucket)
            for key in await _stored_keys(kv):
                # Invalid UTF-8 inside a JSON string: msgspec raises UnicodeDecodeError there.
                await kv.put(key, b'{"suggestions": ["\xff"]}')
        finally:
            await connection.close()
        again = await client.post("/analyze", json={"function_code": ADD})
    assert again.status_code == 200, again.text
    assert again.json()["suggestions"][0] == "Check b is a number."
    # The model was asked again: the entry could not be read.
    assert len(local_fake.sent("/chat/completions")) == 2


async def test_the_same_function_asked_at_once_costs_one_model_call(local_fake: FakeLLM) -> None:
    local_fake.script(
        "/chat/completions", Reply(delay=0.5, body=review_reply("Reject booleans, they are ints.").body)
    )
    async with gateway_client(local_settings(local_fake, local_llm_model="m")) as client:
        answers = await asyncio.gather(
            *(client.post("/analyze", json={"function_code": ADD}) for _ in range(4))
        )
    assert {a.status_code for a in answers} == {200}
    assert all(a.json() == answers[0].json() for a in answers)
    assert answers[0].json()["suggestions"][0] == "Reject booleans, they are ints."
    assert len(local_fake.sent("/chat/completions")) == 1


async def test_an_unreachable_nats_is_a_clear_startup_error() -> None:
    with pytest.raises(
        ConfigError,
        match=r"review cache: NATS at nats://127\.0\.0\.1:9 could not be reached within 1 s "
        r"\(NATS_START_WAIT_S\)",
    ):
        await NatsCache("nats://127.0.0.1:9", "reviews", 60, start_wait_s=1).open()


async def test_a_review_without_the_models_words_is_answered_but_never_kept(local_fake: FakeLLM) -> None:
    # Empty content twice (the review asks once more), then the provider is back to normal.
    local_fake.script(
        "/chat/completions", completion(""), completion(None), review_reply("Reject booleans, they are ints.")
    )
    async with gateway_client(local_settings(local_fake, local_llm_model="m")) as client:
        degraded = await client.post("/analyze", json={"function_code": ADD})
        recovered = await client.post("/analyze", json={"function_code": ADD})
        kept = await client.post("/analyze", json={"function_code": ADD})
    assert degraded.status_code == 200
    assert degraded.json() == {"suggestions": [TYPE_HINTS, DOCSTRING]}
    assert (
        recovered.json()
        == kept.json()
        == {"suggestions": ["Reject booleans, they are ints.", TYPE_HINTS, DOCSTRING]}
    )
    assert len(local_fake.sent("/chat/completions")) == 3


async def test_a_review_without_the_checks_is_answered_but_never_kept(local_fake: FakeLLM) -> None:
    local_fake.script(
        "/chat/completions",
        review_reply("Reject booleans, they are ints."),
        review_reply("Reject booleans, they are ints."),
    )
    settings = local_settings(local_fake, local_llm_model="m")
    upstream = Upstream(settings, build_providers(settings))
    await upstream.open()
    cache = MemoryCache(ttl=0, size=10)
    limits = ReviewLimits(max_suggestions=8, max_code_bytes=65536, max_tokens=300, temperature=0.2)
    broken, working = RuffChecker(), RuffChecker()
    broken.binary = "/bin/false"  # ruff crashes
    try:
        without_checks = await Reviewer(upstream, upstream.providers, cache, broken, limits).review(ADD)
        complete = await Reviewer(upstream, upstream.providers, cache, working, limits).review(ADD)
        again = await Reviewer(upstream, upstream.providers, cache, working, limits).review(ADD)
    finally:
        await upstream.aclose()
    assert (without_checks.suggestions, without_checks.degraded) == (
        ["Reject booleans, they are ints."],
        "no checks: ruff exited with 1",
    )
    assert (complete.suggestions, complete.cached, complete.degraded) == (
        ["Reject booleans, they are ints.", TYPE_HINTS, DOCSTRING],
        False,
        None,
    )
    assert (again.suggestions, again.cached) == (complete.suggestions, True)
    assert len(local_fake.sent("/chat/completions")) == 2


async def test_a_degraded_review_is_marked_in_the_log(
    local_fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    local_fake.script("/chat/completions", completion(""), completion(""))
    with caplog.at_level(logging.INFO, logger="gateway"):
        async with gateway_client(local_settings(local_fake, local_llm_model="m")) as client:
            response = await client.post("/analyze", json={"function_code": ADD})
    assert response.status_code == 200
    assert (
        "review: 2 suggestions via local/m, DEGRADED (not cached): the model answered nothing usable"
        in caplog.messages
    )
