"""A fake gateway: an OpenAI-shaped `POST /v1/chat/completions` that records every request it gets.

A plain ASGI app (serve it with `tests.support.servers.serving`), so callers talk real HTTP to it.
By default it answers at once with `{"suggestions": [...]}` as the message content, as the real
gateway's `code-review` model does; tests script other answers (status, raw body, delay).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.asgi import read_body, run_lifespan

DEFAULT_SUGGESTIONS = ["Add a docstring.", "Name the magic number."]


@dataclass
class GatewayRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> Any:
        return self.body.get("model")

    @property
    def messages(self) -> Any:
        return self.body.get("messages")


def completion(content: str, model: str = "code-review") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@dataclass
class FakeGateway:
    suggestions: list[str] = field(default_factory=lambda: list(DEFAULT_SUGGESTIONS))
    # When set, answered as the message content instead of {"suggestions": ...}.
    content: str | None = None
    # When set, answered as the whole HTTP body (status `status`) instead of a completion.
    raw_body: bytes | None = None
    status: int = 200
    delay: float = 0.0
    record: bool = True
    # Set by whoever serves it: the OpenAI base URL (ending in /v1) to give clients.
    base_url: str = ""
    requests: list[GatewayRequest] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        body = await read_body(receive)
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await self._send(send, 404, b'{"error": {"message": "not found"}}')
            return
        if self.record:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append(GatewayRequest(scope["path"], headers, json.loads(body)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.raw_body is not None:
            await self._send(send, self.status, self.raw_body)
            return
        content = self.content if self.content is not None else json.dumps({"suggestions": self.suggestions})
        await self._send(send, self.status, json.dumps(completion(content)).encode())

    @staticmethod
    async def _send(send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
