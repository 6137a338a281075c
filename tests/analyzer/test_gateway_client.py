"""The analyzer's own gateway client (`analyzer.review.GatewayClient`) against gateways on loopback:
the exact requests it sends, which answers it retries and how long it waits, and its errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from analyzer.errors import GatewayFailed, GatewayTimeout
from analyzer.review import GatewayClient
from review_contract import ReviewContext
from review_contract.checks import ChecksRequest
from tests.support.asgi import read_body, run_lifespan
from tests.support.fake_gateway import DEFAULT_SUGGESTIONS, FakeGateway, completion
from tests.support.servers import serving

SOURCE = "def add(a, b):\n    return a + b"


def client_of(base_url: str, **overrides: Any) -> GatewayClient:
    options: dict[str, Any] = {"model": "code-review", "api_key": "gw-key", "timeout_s": 10.0, **overrides}
    return GatewayClient(base_url, **options)


async def test_a_review_is_the_openai_request_with_the_key_the_request_id_and_the_context(
    gateway: FakeGateway,
) -> None:
    context = ReviewContext(path="calc.py", module=SOURCE + "\n", start_line=1, end_line=2)
    async with client_of(gateway.base_url) as client:
        assert await client.review(SOURCE, request_id="review-7") == (DEFAULT_SUGGESTIONS, [])
        reviewed = await client.reviewed(SOURCE, context=context)
    assert reviewed.tokens == 2
    plain, with_context = gateway.requests
    assert plain.path == "/v1/chat/completions"
    assert plain.body == {"messages": [{"content": SOURCE, "role": "user"}], "model": "code-review"}
    assert plain.headers["authorization"] == "Bearer gw-key"
    assert plain.headers["content-type"] == "application/json"
    assert plain.headers["x-request-id"] == "review-7"
    assert with_context.body["review_context"] == msgspec.to_builtins(context)
    assert "x-request-id" not in with_context.headers


@dataclass
class Scripted:
    """Answers each POST with the next (status, headers, body) of `answers`; counts the calls."""

    answers: list[tuple[int, dict[str, str], bytes]]
    paths: list[str] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        await read_body(receive)
        self.paths.append(scope["path"])
        status, headers, body = self.answers[min(len(self.paths), len(self.answers)) - 1]
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


OK = (200, {"content-type": "application/json"}, msgspec.json.encode(completion('{"suggestions": ["ok"]}')))


async def test_a_busy_gateway_is_retried_after_its_retry_after_and_the_retries_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    busy = (429, {"retry-after": "0.2"}, b'{"error": {"message": "slow down"}}')
    gateway = Scripted([busy, (503, {}, b"restarting"), OK])
    async with serving(gateway) as url, client_of(f"{url}/v1", retries=2) as client:
        with caplog.at_level(logging.INFO, logger="analyzer.review"):
            suggestions, _ = await client.review(SOURCE)
    assert suggestions == ["ok"]
    assert gateway.paths == ["/v1/chat/completions"] * 3
    retries = [record.getMessage() for record in caplog.records if "retry" in record.getMessage()]
    assert len(retries) == 2
    assert retries[0].endswith(": HTTP 429, retry 1/2 in 0.2 s")
    # No Retry-After on the 503: the backoff, 0.5 s doubled once, less up to a quarter.
    assert ": HTTP 503, retry 2/2 in " in retries[1]
    assert 0.75 <= float(retries[1].rsplit(" in ", 1)[1].removesuffix(" s")) <= 1.0


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_refusal_is_not_retried(status: int) -> None:
    gateway = Scripted([(status, {}, b'{"error": {"message": "no"}}'), OK])
    async with serving(gateway) as url, client_of(f"{url}/v1", retries=3) as client:
        with pytest.raises(GatewayFailed, match=f"^the gateway answered HTTP {status}: no$"):
            await client.review(SOURCE)
    assert len(gateway.paths) == 1


async def test_the_last_failure_is_the_error_once_the_retries_are_spent() -> None:
    gateway = Scripted([(504, {"retry-after": "0"}, b'{"error": {"message": "the model is slow"}}')])
    async with serving(gateway) as url, client_of(f"{url}/v1", retries=1) as client:
        with pytest.raises(GatewayTimeout, match=r"^the gateway answered HTTP 504: the model is slow$"):
            await client.checks(ChecksRequest(modules=[]))
    assert gateway.paths == ["/checks", "/checks"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # Its own error's message is repeated; an "error" that is a bare string, or any other
        # body, is not (it may be a proxy's page, or hold anything).
        (b'{"message": "top-level message"}', ": top-level message"),
        (b'{"error": "a bare string"}', ""),
        (b"<html>sk-0123456789abcdef</html>", ""),
    ],
)
async def test_only_the_gateways_own_error_message_is_repeated(body: bytes, said: str) -> None:
    gateway = Scripted([(500, {}, body)])
    async with serving(gateway) as url, client_of(f"{url}/v1") as client:
        with pytest.raises(GatewayFailed) as raised:
            await client.review(SOURCE)
    assert str(raised.value) == f"the gateway answered HTTP 500{said}"


async def test_a_closed_client_makes_no_call(gateway: FakeGateway) -> None:
    client = client_of(gateway.base_url)
    await client.aclose()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.review(SOURCE)
    assert gateway.requests == []


def test_checks_are_beside_the_openai_api_whatever_the_base_url() -> None:
    for base, completions, checks in [
        ("http://gw:8001/v1", "http://gw:8001/v1/chat/completions", "http://gw:8001/checks"),
        ("http://gw:8001/v1/", "http://gw:8001/v1/chat/completions", "http://gw:8001/checks"),
        (
            "https://host/codereview/v1",
            "https://host/codereview/v1/chat/completions",
            "https://host/codereview/checks",
        ),
    ]:
        client = client_of(base)
        assert (client._completions_url, client._checks_url) == (completions, checks)
