"""The review cache: one model call per (code, provider, model, prompt version), in memory or NATS KV."""

from __future__ import annotations

import asyncio
import logging
import uuid

import msgspec
import nats
import pytest
from nats.js.api import DiscardPolicy
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


def sized_review(size: int, tag: str = "") -> CachedReview:
    """A review whose JSON is exactly `size` bytes."""
    empty = len(msgspec.json.encode(CachedReview(suggestions=[tag], provider="local", model="m")))
    return CachedReview(suggestions=[tag + "x" * (size - empty)], provider="local", model="m")


async def test_the_memory_cache_holds_at_most_max_bytes_and_never_an_entry_over_its_cap() -> None:
    cache = MemoryCache(ttl=0, size=100, max_bytes=3000, max_entry_bytes=1500)
    for key in "abcde":
        await cache.put(key, sized_review(1000, key))
    assert cache.bytes == 3000
    assert [await cache.get(key) is not None for key in "abcde"] == [False, False, True, True, True]
    # Over max_entry_bytes: answered by the review, never kept, and nothing else dropped for it.
    await cache.put("big", sized_review(1501))
    assert await cache.get("big") is None
    assert cache.bytes == 3000
    assert await cache.get("c") == sized_review(1000, "c")
    # The same key again replaces its bytes, it does not add to them.
    await cache.put("c", sized_review(500, "c"))
    assert cache.bytes == 2500
    await cache.close()
    assert cache.bytes == 0


async def test_a_review_over_the_entry_cap_is_answered_but_not_cached(local_fake: FakeLLM) -> None:
    long = [
        "Reject booleans before adding them: True and False are ints in Python, so add(True, 2) "
        "quietly returns 3 where a caller would rather hear that the operands have the wrong type.",
        "Adding a str to an int raises TypeError deep inside the expression; check both operands "
        "first and raise a ValueError that says which argument was wrong and what it held.",
        "Floating point sums round: 0.1 plus 0.2 is not 0.3, so callers who compare the result "
        "with equality will be surprised; say so, or offer a variant that takes Decimal values.",
        "Very large integers make the sum slow and memory hungry without bound; if inputs come "
        "from users, cap their magnitude before adding so one request cannot pin a processor.",
        "Name the function after what it means in your domain rather than the operator it wraps, "
        "so that readers of the calling code learn why two quantities are combined right there.",
        "Write a small table of examples as tests, including negative numbers, zero and mixed "
        "int and float operands, so that later changes to this helper keep its behaviour intact.",
    ]
    local_fake.script("/chat/completions", review_reply(*long), review_reply(*long))
    settings = local_settings(local_fake, review_cache_max_entry_bytes=1024)
    async with gateway_client(settings) as client:
        first = await client.post("/analyze", json={"function_code": ADD})
        second = await client.post("/analyze", json={"function_code": ADD})
    assert first.status_code == second.status_code == 200
    assert len(msgspec.json.encode(first.json())) > 1024
    assert len(local_fake.sent("/chat/completions")) == 2


@pytest.mark.nats
async def test_the_nats_bucket_holds_at_most_max_bytes_dropping_its_oldest(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = f"reviews_{uuid.uuid4().hex[:8]}"
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        # A bucket made before the cap (nats-py's defaults: no byte limit, discard new when full).
        await js.create_key_value(bucket=bucket, history=1, ttl=600)
        cache = NatsCache(nats_url, bucket, ttl=600, start_wait_s=5, max_bytes=8192, max_entry_bytes=2048)
        await cache.open()
        try:
            config = (await js.stream_info(f"KV_{bucket}")).config
            assert (config.max_bytes, config.discard) == (8192, DiscardPolicy.OLD)
            for n in range(40):
                await cache.put(f"k{n}", sized_review(1000, str(n)))
            await cache.put("big", sized_review(2049))
            state = (await js.stream_info(f"KV_{bucket}")).state
            newest, oldest, big = await cache.get("k39"), await cache.get("k0"), await cache.get("big")
        finally:
            await cache.close()
    finally:
        await connection.close()
    assert state.bytes <= 8192
    assert newest == sized_review(1000, "39")
    assert oldest is None
    assert big is None
    # A full bucket took every new review: no write was refused.
    assert "review cache write failed" not in caplog.text
