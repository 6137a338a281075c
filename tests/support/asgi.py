"""The two chores every plain ASGI fake does before it answers: lifespan, and reading the body."""

from __future__ import annotations

from typing import Any


async def run_lifespan(receive: Any, send: Any) -> None:
    """Answer uvicorn's lifespan messages until shutdown (nothing to start or stop)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes:
    """The whole request body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body
