"""Gateway fixtures: recording fake providers on loopback and a gateway served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from tests.support.fake_llm import FakeLLM, served_fake_llm
from tests.support.servers import serving

ADD = "def add(a, b): return a + b"

# Everything a test does not set explicitly: no NATS, no tunnel, quick retries.
BASE: dict[str, Any] = {
    "nats_url": None,
    "local_llm_ssh_host": None,
    "llm_fallback": "",
    "llm_retry_backoff": 0.01,
    "llm_max_retries": 2,
    "llm_connect_timeout": 2.0,
    "llm_read_timeout": 10.0,
    "openai_api_key": None,
    "deepseek_api_key": None,
    "local_llm_api_key": None,
    "local_llm_model": "",
}


def make_settings(**values: Any) -> Settings:
    """Settings from `values` on top of BASE, ignoring `.env` (the environment still counts)."""
    return Settings(_env_file=None, **{**BASE, **values})


@asynccontextmanager
async def gateway_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app served by uvicorn on loopback, and an HTTP client pointed at it."""
    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client


async def streamed_chat(settings: Settings) -> tuple[int, bytes]:
    """A streamed `gpt-4o` chat completion through a gateway with `settings`: its status and whole body."""
    async with (
        gateway_client(settings) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        ) as response,
    ):
        return response.status_code, b"".join([chunk async for chunk in response.aiter_bytes()])


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeLLM]:
    """A fake OpenAI; point OPENAI_BASE_URL at `openai_fake.url + "/v1"`."""
    async with served_fake_llm() as fake:
        yield fake


@pytest.fixture
async def deepseek_fake() -> AsyncIterator[FakeLLM]:
    """A fake DeepSeek (its base URL has no /v1: DEEPSEEK_BASE_URL = `deepseek_fake.url`)."""
    async with served_fake_llm() as fake:
        yield fake


@pytest.fixture
async def local_fake() -> AsyncIterator[FakeLLM]:
    """A fake model_host; LOCAL_LLM_BASE_URL = `local_fake.url + "/v1"`."""
    async with served_fake_llm() as fake:
        # A size that is asked (prompt.asks_the_model): the bundled 135M model is not.
        fake.models = ["qwen2.5-1.5b-instruct"]
        yield fake


def openai_settings(fake: FakeLLM, **values: Any) -> Settings:
    defaults = {
        "llm_provider": "openai",
        "openai_api_key": "sk-openai-secret",
        "openai_base_url": fake.url + "/v1",
    }
    return make_settings(**{**defaults, **values})


def local_settings(fake: FakeLLM, **values: Any) -> Settings:
    return make_settings(**{"llm_provider": "local", "local_llm_base_url": fake.url + "/v1", **values})
