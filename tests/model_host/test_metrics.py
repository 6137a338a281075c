"""GET /metrics on model_host serving the real bundled model: tokens in/out, tokens/s, the queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import httpx
from litestar import Litestar
from openai.types.chat import ChatCompletionMessageParam

from tests.model_host.conftest import host_of
from tests.support.clients import openai_client
from tests.support.metrics import sample, scrape
from tests.support.servers import serving

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


async def test_a_completion_counts_its_tokens_speed_and_request(
    smollm_app: Callable[..., Litestar], model_id: str
) -> None:
    async with (
        serving(smollm_app()) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
        openai_client(f"{url}/v1") as client,
    ):
        before = await scrape(http)
        completion = await client.chat.completions.create(model=model_id, messages=MESSAGES, max_tokens=8)
        after = await scrape(http)
    assert completion.usage is not None

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("model_host_tokens_total", direction="in") == completion.usage.prompt_tokens
    assert grew("model_host_tokens_total", direction="out") == completion.usage.completion_tokens
    assert grew("model_host_generation_tokens_per_second_count") == 1
    assert grew("model_host_generation_tokens_per_second_sum") > 0
    assert grew("model_host_queue_wait_seconds_count") == 1
    route = {"app_name": "model_host", "method": "POST", "path": "/v1/chat/completions", "status_code": "200"}
    assert grew("codereview_requests_total", **route) == 1


async def test_a_request_waiting_for_the_model_shows_in_the_queue_depth(
    smollm_app: Callable[..., Litestar], model_id: str
) -> None:
    app = smollm_app()
    slot = host_of(app).slot
    release = threading.Event()
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
        openai_client(f"{url}/v1") as client,
    ):
        idle = sample(await scrape(http), "model_host_queue_depth")
        # Something else holds the model, so the completion must wait its turn.
        holder = asyncio.create_task(slot.run(lambda cancelled: release.wait(30)))
        async with asyncio.timeout(30):
            while not slot.busy:
                await asyncio.sleep(0.005)
        waiting = asyncio.create_task(
            client.chat.completions.create(model=model_id, messages=MESSAGES, max_tokens=4)
        )
        async with asyncio.timeout(30):
            while slot.waiting < 1:
                await asyncio.sleep(0.005)
        queued = sample(await scrape(http), "model_host_queue_depth")
        release.set()
        await holder
        await waiting
        drained = sample(await scrape(http), "model_host_queue_depth")
    assert queued - idle == 1
    assert drained == idle
