"""Clients the tests use to talk to our services as users and other services do."""

from __future__ import annotations

from openai import AsyncOpenAI


def openai_client(base_url: str, api_key: str = "test-key", timeout: float = 120.0) -> AsyncOpenAI:
    """The official `openai` package pointed at one of our OpenAI-compatible routes.

    `base_url` ends in `/v1`. Retries are off so a test sees exactly one request per call.
    """
    return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
