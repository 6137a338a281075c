"""A fake OpenAI-compatible provider (OpenAI, DeepSeek, a model host) on loopback that records requests.

Serve it with `served_fake_llm()` (or `tests.support.servers.serving(fake)`); script answers
per path suffix with `fake.script("chat/completions", Reply(...), ...)`; read what was sent in
`fake.requests`. Unscripted requests get a model list (`.../models`) or a chat completion whose
content is `fake.default_content`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.asgi import read_body, run_lifespan
from tests.support.servers import serving

Scope = dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """What the fake answers: a status, a body, headers, an optional delay, or SSE chunks."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    delay: float = 0.0
    chunks: tuple[bytes, ...] = ()
    # Seconds between chunks: a provider trickling its answer (each read is quick, the whole is not).
    chunk_delay: float = 0.0


def completion(content: str | None, model: str = "fake-model") -> Reply:
    """A chat completion answering `content` (None: a message without content)."""
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    return Reply(body=json.dumps(body).encode())


def review_reply(*suggestions: str) -> Reply:
    """A chat completion whose content is the gateway's contract `{"suggestions": [...]}`."""
    return completion(json.dumps({"suggestions": list(suggestions)}))


def stream_reply(*pieces: str, model: str = "fake-model") -> Reply:
    """An SSE chat completion stream sending `pieces` as content deltas, then [DONE]."""
    chunks = []
    for index, piece in enumerate(pieces):
        delta: dict[str, str] = {"content": piece}
        if index == 0:
            delta["role"] = "assistant"
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        chunks.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    end = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    chunks.append(b"data: " + json.dumps(end).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return Reply(headers=(("content-type", "text/event-stream"),), chunks=tuple(chunks))


def error_reply(status: int, message: str = "scripted failure", retry_after: str | None = None) -> Reply:
    headers = [("content-type", "application/json")]
    if retry_after is not None:
        headers.append(("retry-after", retry_after))
    body = json.dumps({"error": {"message": message, "type": "fake_error"}}).encode()
    return Reply(status=status, body=body, headers=tuple(headers))


@dataclass
class FakeLLM:
    """The ASGI app. `models` is what GET .../models lists."""

    models: list[str] = field(default_factory=lambda: ["fake-model"])
    # Set by whoever serves it: the base URL, e.g. "http://127.0.0.1:PORT".
    url: str = ""
    default_content: str = json.dumps({"suggestions": ["Check the inputs before using them."]})
    requests: list[Recorded] = field(default_factory=list)
    _scripts: dict[str, deque[Reply]] = field(default_factory=dict)

    def script(self, suffix: str, *replies: Reply) -> None:
        """Answer the next requests whose path ends with `suffix` with `replies`, in order."""
        self._scripts.setdefault(suffix, deque()).extend(replies)

    def sent(self, suffix: str) -> list[Recorded]:
        """The recorded requests whose path ends with `suffix`."""
        return [r for r in self.requests if r.path.endswith(suffix)]

    def _next(self, path: str) -> Reply:
        for suffix, queue in self._scripts.items():
            if path.endswith(suffix) and queue:
                return queue.popleft()
        if path.endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return Reply(body=json.dumps({"object": "list", "data": data}).encode())
        if path.endswith("/chat/completions"):
            return completion(self.default_content)
        return error_reply(404, f"no route {path}")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body))
        reply = self._next(scope["path"])
        if reply.delay:
            await asyncio.sleep(reply.delay)
        raw_headers = [(k.encode(), v.encode()) for k, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        if reply.chunks:
            for chunk in reply.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": reply.body})


@asynccontextmanager
async def served_fake_llm() -> AsyncIterator[FakeLLM]:
    """A FakeLLM served on loopback, its `url` set to where."""
    fake = FakeLLM()
    async with serving(fake) as url:
        fake.url = url
        yield fake
