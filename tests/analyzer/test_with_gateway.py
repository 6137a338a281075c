"""The analyzer against the real gateway (`python -m gateway`), whose OpenAI provider is a mock.

Checks the contract between the two: the analyzer's `code-review` call through the `openai`
package is understood by the gateway, the function's exact source reaches the provider inside
the gateway's prompt, and the gateway's content `{"suggestions": [...]}` comes back as the answer.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from analyzer.app import create_app
from analyzer.settings import Settings
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.fake_gateway import FakeGateway
from tests.support.servers import service_process, serving

pytestmark = [pytest.mark.nats, pytest.mark.slow]

SOURCE = "def mean(values):\n    # the average\n    return sum(values) / len(values)"


async def test_the_real_gateway_reviews_what_the_analyzer_sends(
    nats_url: str, gateway: FakeGateway, service_logs: Path
) -> None:
    # `gateway` plays OpenAI here: the real gateway is its client.
    openai = gateway
    openai.suggestions = ["Guard against an empty list: len(values) may be 0."]
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-analyzer",
        "OPENAI_BASE_URL": openai.base_url,
        "OPENAI_MODEL": "gpt-4o-mini",
        "LLM_MAX_RETRIES": "0",
    }
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"stats.py": f"import math\n\n\n{SOURCE}\n"})
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as real_gateway:
        settings = Settings(nats_url=nats_url, gateway_url=f"{real_gateway.url}/v1", gateway_retries=0)
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            response = await client.post(
                "/analyze/function", json={"job_id": job.job_id, "function_name": "stats.mean"}
            )
    assert response.status_code == 200, response.text
    suggestions = response.json()["suggestions"]
    assert "Guard against an empty list: len(values) may be 0." in suggestions
    assert all(isinstance(s, str) for s in suggestions)

    [sent] = openai.requests
    assert sent.model == "gpt-4o-mini"
    assert sent.headers["authorization"] == "Bearer sk-test-analyzer"
    prompt = "\n".join(m["content"] for m in sent.messages)
    assert f"\n{SOURCE}\n" in prompt


async def test_the_real_gateway_sees_no_syntax_error_in_a_cut_or_a_method(
    nats_url: str, gateway: FakeGateway, service_logs: Path
) -> None:
    # A one-line function longer than the budget, and a decorated method with a trailing comment:
    # cut mid-line or sent as it sits in its class, neither would parse.
    files = {
        "data.py": "def table(): return [" + "1, " * 2000 + "]\n",
        "shapes.py": (
            "import functools\n\n\nclass Box:\n    @functools.cache\n    def size(self):\n"
            "        raise NotImplementedError()  # pragma: no cover\n"
        ),
    }
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-analyzer",
        "OPENAI_BASE_URL": gateway.base_url,
        "LLM_MAX_RETRIES": "0",
    }
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, files)
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as real_gateway:
        settings = Settings(
            nats_url=nats_url,
            gateway_url=f"{real_gateway.url}/v1",
            gateway_retries=0,
            analyzer_source_max_chars=1000,
        )
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            answers = [
                await client.post("/analyze/function", json={"job_id": job.job_id, "function_name": name})
                for name in ("data.table", "shapes.Box.size")
            ]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    cut, method = (a.json()["suggestions"] for a in answers)
    assert cut[0].startswith("This review covers only the first 1 of 1 lines of data.table")
    for suggestions in (cut, method):
        assert not [s for s in suggestions if "does not parse" in s]
    prompts = ["\n".join(m["content"] for m in r.messages) for r in gateway.requests]
    assert "def table(): ...\n# ... the rest of this function" in prompts[0]
    assert (
        "@functools.cache\ndef size(self):\n    raise NotImplementedError()  # pragma: no cover" in prompts[1]
    )


async def test_keys_on_both_and_one_request_id_from_the_client_to_the_provider(
    nats_url: str, gateway: FakeGateway, service_logs: Path
) -> None:
    openai = gateway
    openai.suggestions = ["Name the magic number."]
    gateway_key = "gw-key-for-the-analyzer-0123"
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-analyzer",
        "OPENAI_BASE_URL": openai.base_url,
        "LLM_MAX_RETRIES": "0",
        "LOG_LEVEL": "DEBUG",
        "CODEREVIEW_API_KEYS": f"some-other-key-4567,{gateway_key}",
    }
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"stats.py": f"{SOURCE}\n"})
    body = {"job_id": job.job_id, "function_name": "stats.mean"}
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as real_gateway:
        keyed = Settings(
            nats_url=nats_url,
            gateway_url=f"{real_gateway.url}/v1",
            gateway_retries=0,
            gateway_api_key=gateway_key,
            codereview_api_keys="analyzer-key-89ab",
        )
        async with (
            serving(create_app(keyed)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            refused = await client.post("/analyze/function", json=body)
            reviewed = await client.post(
                "/analyze/function",
                json=body,
                headers={"Authorization": "Bearer analyzer-key-89ab", "X-Request-ID": "review-77"},
            )
        # An analyzer that does not hold one of the gateway's keys gets a 502 that says why.
        unkeyed = Settings(nats_url=nats_url, gateway_url=f"{real_gateway.url}/v1", gateway_retries=0)
        async with (
            serving(create_app(unkeyed)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            turned_away = await client.post("/analyze/function", json=body)
        log = real_gateway.log()
    assert refused.status_code == 401
    assert reviewed.status_code == 200, reviewed.text
    assert list(reviewed.json()) == ["suggestions"]
    assert "Name the magic number." in reviewed.json()["suggestions"]
    assert reviewed.headers["x-request-id"] == "review-77"
    [sent] = openai.requests
    assert sent.headers["x-request-id"] == "review-77"
    # The caller's key stays with the gateway: the provider gets the provider's key.
    assert sent.headers["authorization"] == "Bearer sk-test-analyzer"
    assert "[request=review-77]" in log
    assert gateway_key not in log
    assert turned_away.status_code == 502
    assert "the gateway answered HTTP 401" in turned_away.json()["detail"]
