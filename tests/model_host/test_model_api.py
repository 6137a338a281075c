"""model_host with the real bundled model, driven through the official `openai` package."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from litestar import Litestar
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from model_host.engines import LlamaCppEngine, Sampling
from tests.model_host.conftest import CONTEXT, host_of, model_settings
from tests.support.clients import openai_client
from tests.support.servers import serving
from tests.support.waiting import until

pytestmark = pytest.mark.model

STORY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a very long story about a dragon."}
]
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


async def test_models_lists_the_served_model(client: AsyncOpenAI, model_id: str) -> None:
    models = await client.models.list()
    assert [model.id for model in models.data] == [model_id]
    assert model_id == "SmolLM2-135M-Instruct.Q4_1"


async def test_health_is_ok_once_loaded(model_url: str, model_id: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(model_url.removesuffix("/v1") + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": model_id, "engine": "llama_cpp"}


async def test_a_completion_stops_at_max_tokens_with_exact_usage(client: AsyncOpenAI, model_id: str) -> None:
    completion = await client.chat.completions.create(
        model=model_id, messages=STORY, max_tokens=8, temperature=0
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert completion.model == model_id
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens > 10
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 8


async def test_a_short_answer_ends_with_stop_before_max_tokens(client: AsyncOpenAI, model_id: str) -> None:
    completion = await client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "What is 2+2? Answer briefly."}],
        max_tokens=60,
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens < 60
    assert "4" in (completion.choices[0].message.content or "")


async def test_a_stop_sequence_cuts_the_text_before_it(client: AsyncOpenAI, model_id: str) -> None:
    free = await client.chat.completions.create(model=model_id, messages=STORY, max_tokens=16, temperature=0)
    text = free.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 4, text
    stop = f" {words[3]}"
    cut = await client.chat.completions.create(
        model=model_id, messages=STORY, max_tokens=16, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


async def test_the_same_seed_gives_the_same_sample(client: AsyncOpenAI, model_id: str) -> None:

    async def sample(seed: int) -> str:
        completion = await client.chat.completions.create(
            model=model_id, messages=STORY, max_tokens=12, temperature=1.0, top_p=0.95, seed=seed
        )
        return completion.choices[0].message.content or ""

    assert await sample(1234) == await sample(1234)


async def test_a_stream_matches_the_whole_completion(client: AsyncOpenAI, model_id: str) -> None:
    whole = await client.chat.completions.create(model=model_id, messages=STORY, max_tokens=12, temperature=0)
    stream = await client.chat.completions.create(
        model=model_id,
        messages=STORY,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "length"
    assert set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


async def test_the_raw_stream_is_sse_ending_with_done(model_url: str, model_id: str) -> None:
    body = {"model": model_id, "messages": HELLO, "max_tokens": 4, "stream": True}
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.post(f"{model_url}/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    assert all(
        json.loads(event.removeprefix("data: "))["object"] == "chat.completion.chunk" for event in events[:-1]
    )


REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["good", "needs work"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "summary": {"type": "string", "maxLength": 60},
    },
    "required": ["verdict", "score", "summary"],
    "additionalProperties": False,
}


def check_review(value: Any) -> None:
    """REVIEW_SCHEMA, checked by hand (no JSON Schema validator among the dependencies)."""
    assert isinstance(value, dict)
    assert set(value) == {"verdict", "score", "summary"}
    assert value["verdict"] in {"good", "needs work"}
    assert isinstance(value["score"], int)
    assert 0 <= value["score"] <= 10
    assert isinstance(value["summary"], str)
    assert len(value["summary"]) <= 60


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_json_schema_output_parses_and_matches_the_schema(
    client: AsyncOpenAI, model_id: str, seed: int
) -> None:
    completion = await client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Review this Python function: def add(a, b): return a - b"}],
        max_tokens=120,
        temperature=0.8,
        seed=seed,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": REVIEW_SCHEMA, "strict": True},
        },
    )
    assert completion.choices[0].finish_reason == "stop"
    check_review(json.loads(completion.choices[0].message.content or ""))


async def test_a_streamed_json_schema_answer_parses_too(client: AsyncOpenAI, model_id: str) -> None:
    stream = await client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Review: def div(a, b): return a / b"}],
        max_tokens=120,
        temperature=0,
        stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW_SCHEMA}},
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    check_review(json.loads(text))


async def test_json_object_output_is_a_json_object(client: AsyncOpenAI, model_id: str) -> None:
    completion = await client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content or ""
    assert completion.choices[0].finish_reason == "stop", content
    assert isinstance(json.loads(content), dict)


# -- errors, through the openai package's own exceptions ---------------------------------------


async def test_an_unknown_role_is_a_bad_request(client: AsyncOpenAI, model_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=model_id,
            messages=[{"role": "narrator", "content": "hi"}],  # type: ignore[misc,list-item]
            max_tokens=4,
        )
    assert refused.value.status_code == 400
    assert refused.value.code == "invalid_request"
    assert refused.value.param == "messages[0].role"
    assert "'narrator'" in refused.value.message


async def test_a_prompt_longer_than_the_context_says_how_long_and_the_limit(
    client: AsyncOpenAI, model_id: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "word " * 600}], max_tokens=4
        )
    assert refused.value.code == "context_length_exceeded"
    message = refused.value.message
    assert f"maximum context length is {CONTEXT} tokens" in message
    tokens = int(message.split("resulted in ")[1].split(" tokens")[0])
    assert tokens > CONTEXT


async def test_max_tokens_beyond_the_context_is_a_bad_request(client: AsyncOpenAI, model_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=model_id, messages=HELLO, max_tokens=CONTEXT)
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.param == "max_tokens"
    assert f"{CONTEXT} in the completion" in refused.value.message


async def test_an_invalid_body_is_a_bad_request(client: AsyncOpenAI, model_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=model_id, messages=HELLO, temperature=7)
    assert refused.value.param == "temperature"
    assert "<= 2" in refused.value.message


async def test_an_unknown_model_is_not_found(client: AsyncOpenAI, model_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=4)
    assert refused.value.code == "model_not_found"
    assert model_id in refused.value.message


# -- load: the queue, disconnects, the event loop ----------------------------------------------


async def test_health_answers_while_a_generation_runs(
    smollm_app: Callable[..., Litestar], model_id: str
) -> None:
    app = smollm_app()
    host = host_of(app)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=300) as client:
        body = {"model": model_id, "messages": STORY, "max_tokens": 120, "temperature": 0}
        generation = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await until(lambda: host.slot.busy)
        health = await client.get("/health")
        # Answered while the model was still generating: the generation is off the event loop.
        assert host.slot.busy
        assert health.status_code == 200
        finished = (await generation).json()
    assert finished["choices"][0]["finish_reason"] == "length"
    assert finished["usage"]["completion_tokens"] == 120


async def test_a_full_queue_is_503_with_retry_after(
    smollm_app: Callable[..., Litestar], model_id: str
) -> None:
    app = smollm_app(model_queue_size=0, model_retry_after_s=7)
    host = host_of(app)
    async with serving(app) as url, openai_client(f"{url}/v1") as client:
        stream = await client.chat.completions.create(
            model=model_id, messages=STORY, max_tokens=300, stream=True
        )
        await anext(aiter(stream))  # the first chunk: it holds the model now
        with pytest.raises(openai.InternalServerError) as refused:
            await client.chat.completions.create(model=model_id, messages=HELLO, max_tokens=4)
        await stream.close()
        await until(lambda: not host.slot.busy)
        after = await client.chat.completions.create(model=model_id, messages=HELLO, max_tokens=4)
    assert refused.value.status_code == 503
    assert refused.value.response.headers["retry-after"] == "7"
    assert refused.value.code == "queue_full"
    assert after.choices[0].message.content


async def test_a_client_that_disconnects_stops_its_generation(
    smollm_app: Callable[..., Litestar], model_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = smollm_app()
    host = host_of(app)
    caplog.set_level(logging.INFO, logger="model_host")
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=300) as client:
        body = {"model": model_id, "messages": STORY, "max_tokens": 400, "temperature": 0}
        request = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await until(lambda: host.slot.busy)
        request.cancel()
        await until(lambda: not host.slot.busy)
    cancelled = [r.getMessage() for r in caplog.records if "generation cancelled" in r.getMessage()]
    assert len(cancelled) == 1
    assert int(cancelled[0].split("after ")[1].split(" ")[0]) < 400


async def test_a_stream_reader_that_leaves_stops_its_generation(
    smollm_app: Callable[..., Litestar], model_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = smollm_app()
    host = host_of(app)
    caplog.set_level(logging.INFO, logger="model_host")
    async with serving(app) as url, openai_client(f"{url}/v1") as client:
        stream = await client.chat.completions.create(
            model=model_id, messages=STORY, max_tokens=400, temperature=0, stream=True
        )
        await anext(aiter(stream))
        await stream.close()
        await until(lambda: not host.slot.busy)
    assert any("generation cancelled" in r.getMessage() for r in caplog.records)


async def test_a_waiting_client_that_leaves_gives_up_its_place(
    smollm_app: Callable[..., Litestar], model_id: str
) -> None:
    app = smollm_app(model_queue_size=1)
    host = host_of(app)
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=300) as client,
        openai_client(f"{url}/v1") as client_ai,
    ):
        stream = await client_ai.chat.completions.create(
            model=model_id, messages=STORY, max_tokens=300, stream=True
        )
        await anext(aiter(stream))
        waiting = asyncio.create_task(
            client.post("/v1/chat/completions", json={"model": model_id, "messages": HELLO, "max_tokens": 4})
        )
        await until(lambda: host.slot.waiting == 1)
        waiting.cancel()
        await until(lambda: host.slot.waiting == 0)
        # Its place is free again: another request may queue instead of getting 503.
        queued = asyncio.create_task(
            client_ai.chat.completions.create(model=model_id, messages=HELLO, max_tokens=4)
        )
        await until(lambda: host.slot.waiting == 1)
        await stream.close()
        assert (await queued).choices[0].message.content


def test_prompts_are_read_with_every_core_tokens_generated_with_half_and_weights_not_repacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The defaults, not the tests' MODEL_BATCH_THREADS (tests/conftest.py), on an engine of its own.
    monkeypatch.delenv("MODEL_BATCH_THREADS", raising=False)
    settings = model_settings()
    engine = LlamaCppEngine(settings.resolved_model_path(), settings)
    llama: Any = engine._llama
    cores = len(os.sched_getaffinity(0))
    assert llama.context_params.n_threads_batch == settings.batch_threads() == cores
    assert llama.context_params.n_threads == settings.threads() == max(1, cores // 2)
    assert llama.model_params.use_extra_bufts is False
    # And it answers so: a prompt read with every core, a few tokens generated.
    prompt = engine.tokenize(engine.render_chat([{"role": "user", "content": "Say hello."}]).text)
    tokens = list(itertools.islice(engine.token_stream(prompt, Sampling(seed=1), None), 4))
    assert tokens
    assert b"".join(engine.piece(token) for token in tokens)
