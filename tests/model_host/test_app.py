"""The HTTP layer with a scripted engine: health while loading, error shapes, SSE framing, queueing."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from model_host.app import create_app
from model_host.engines import Engine
from model_host.settings import Settings
from tests.model_host.fakes import ScriptedEngine
from tests.support.servers import serving


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, model_name="tiny", **overrides)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **fields}


async def test_health_is_503_while_loading_then_200() -> None:
    release = threading.Event()
    engine = ScriptedEngine()

    def slow_loader(_: Settings) -> Engine:
        release.wait(30)
        return engine

    app = create_app(settings(), loader=slow_loader)
    async with AsyncTestClient(app) as client:
        loading = await client.get("/health")
        assert loading.status_code == 503
        assert loading.json() == {"status": "loading", "model": "tiny", "engine": "llama_cpp"}
        refused = await client.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "model_loading"
        models = await client.get("/v1/models")  # the id is known before the model is loaded
        assert [m["id"] for m in models.json()["data"]] == ["tiny"]
        release.set()
        async with asyncio.timeout(30):
            while (await client.get("/health")).status_code != 200:
                await asyncio.sleep(0.01)
        answer = await client.post("/v1/chat/completions", json=chat())
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "Hello world"


async def test_a_failed_load_is_reported_and_signalled() -> None:
    failures: list[BaseException] = []

    def broken_loader(_: Settings) -> Engine:
        raise ValueError("MODEL_PATH /models/x.gguf: not a GGUF model file")

    app = create_app(settings(), loader=broken_loader, on_load_failure=failures.append)
    async with AsyncTestClient(app) as client:
        async with asyncio.timeout(30):
            while not failures:
                await asyncio.sleep(0.01)
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert "/models/x.gguf" in health.json()["error"]
        refused = await client.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "model_failed"
    assert [str(error) for error in failures] == ["MODEL_PATH /models/x.gguf: not a GGUF model file"]


async def test_a_completion_has_openai_keys_and_exact_usage() -> None:
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        response = await client.post("/v1/chat/completions", json=chat(max_tokens=1))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion"
    assert body["model"] == "tiny"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello"},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 19, "completion_tokens": 1, "total_tokens": 20}


async def test_a_stream_is_openai_chunks_then_done() -> None:
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True, stream_options={"include_usage": True})
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hello", " world"]
    assert chunks[3]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21}


async def test_a_stream_that_fails_midway_ends_with_an_error_event() -> None:
    class Exploding(ScriptedEngine):
        def piece(self, token: int) -> bytes:
            raise RuntimeError("decode failed")

    async with AsyncTestClient(create_app(settings(), engine=Exploding())) as client:
        response = await client.post("/v1/chat/completions", json=chat(stream=True))
        plain = await client.post("/v1/chat/completions", json=chat())
    last = response.text.strip().split("\n\n")[-1]
    error = json.loads(last.removeprefix("data: "))["error"]
    assert error["code"] == "generation_failed"
    assert "RuntimeError: decode failed" in error["message"]
    assert plain.status_code == 500
    assert plain.json()["error"]["code"] == "generation_failed"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/v1/nothing", 404, "not_found"), ("DELETE", "/v1/chat/completions", 405, None)],
)
async def test_routing_errors_have_openais_shape(
    method: str, path: str, status: int, code: str | None
) -> None:
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        response = await client.request(method, path)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"


async def test_bad_input_is_400_in_openais_shape() -> None:
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        response = await client.post("/v1/chat/completions", content=b"{oops")
        wrong_role = await client.post(
            "/v1/chat/completions", json=chat(messages=[{"role": "robot", "content": "x"}])
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in response.json()["error"]["message"]
    assert wrong_role.status_code == 400
    assert wrong_role.json()["error"]["param"] == "messages[0].role"


def raw(**fields: Any) -> bytes:
    return json.dumps(chat(**fields)).encode()


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"", None, "the request body is empty"),
        (b"[]", None, "Expected `object`"),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(),
            None,
            "missing required field `model`",
        ),
        (raw(messages=[]), "messages", "length >= 1"),
        (raw(temperature=3), "temperature", "<= 2"),
        (raw(top_p=0), "top_p", "> 0"),
        (raw(max_tokens=0), "max_tokens", ">= 1"),
        (raw(max_tokens=[1]), "max_tokens", "Expected `int | null`, got `array`"),
        (raw(stop=["a", "b", "c", "d", "e"]), "stop", "length <= 4"),
        (
            raw(messages=[{"role": "user", "content": 5}]),
            "messages[0].content",
            "Expected `str | array | null`",
        ),
        (raw(tools=[]), None, "unknown field `tools`"),
        (raw(response_format={"type": "xml"}), "response_format.type", "Invalid enum value 'xml'"),
    ],
)
async def test_malformed_bodies_are_400_with_the_reason_and_where(
    body: bytes, param: str | None, words: str
) -> None:
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request")
    assert words in error["message"]
    assert error["param"] == param


async def test_numbers_sent_as_strings_are_read_as_numbers_as_litestar_reads_every_body() -> None:
    # Litestar converts a typed body in msgspec's lax mode (as for the gateway's and the analyzer's
    # bodies): "1" is read as 1. OpenAI would refuse it; the value means the same either way.
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        lax = await client.post("/v1/chat/completions", json=chat(max_tokens="1", stream="false"))
        schema = await client.get("/schema/openapi.json")
    assert lax.status_code == 200, lax.text
    assert lax.json()["usage"]["completion_tokens"] == 1
    # The typed body also describes the route in the OpenAPI schema.
    operation = schema.json()["paths"]["/v1/chat/completions"]["post"]
    assert "ChatCompletionRequest" in json.dumps(operation["requestBody"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"model":"tiny","messages":[{"role":"user","content":"\xff\xfe"}]}',
            "not valid UTF-8 (invalid start byte)",
        ),
        (b'{"model":"tiny\xc3","messages":[]}', "not valid UTF-8 (invalid continuation byte)"),
        (b'{"model":"tiny","messages":[{"role":"user","content":"\\udc00"}]}', "invalid utf-16 surrogate"),
        (b'{"model":"tiny","messages":[{"role":"user","content":"a\\ud800b"}]}', "not valid JSON"),
        ('{"model":"tiny","messages":[]}'.encode("utf-16"), "not valid UTF-8 (invalid start byte)"),
    ],
    ids=["invalid-utf8", "truncated-utf8", "lone-low-surrogate", "lone-high-surrogate", "utf16"],
)
async def test_an_undecodable_body_is_400_with_a_message_never_500(body: bytes, message: str) -> None:
    # Served for real (uvicorn on loopback), so nothing between the socket and the handler is skipped.
    app = create_app(settings(), engine=ScriptedEngine())
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
        )
        after = await client.post("/v1/chat/completions", json=chat())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert message in error["message"]
    assert after.status_code == 200, "the server goes on serving"


async def test_beyond_the_queue_size_a_stream_is_refused_before_it_starts() -> None:
    gate = threading.Event()
    engine = ScriptedEngine([b"x"], gate=gate, end_of_turn=False)
    app = create_app(settings(model_queue_size=0), engine=engine)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        running = asyncio.create_task(client.post("/v1/chat/completions", json=chat(max_tokens=3)))
        async with asyncio.timeout(30):
            while not engine.started.is_set():
                await asyncio.sleep(0.01)
        refused = await client.post("/v1/chat/completions", json=chat(stream=True))
        gate.set()
        assert (await running).status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "queue_full"


async def test_the_openapi_document_is_served_at_schema() -> None:
    async with AsyncTestClient(create_app(settings(), engine=ScriptedEngine())) as client:
        document = await client.get("/schema/openapi.json")
        page = await client.get("/schema")
    assert document.status_code == 200
    assert document.json()["info"]["title"] == "codereview model_host"
    assert set(document.json()["paths"]) == {"/health", "/v1/models", "/v1/chat/completions"}
    assert page.status_code == 200
