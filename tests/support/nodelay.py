"""`serving` with TCP_NODELAY on the accepted connections, for tests and benches that make many requests.

asyncio turns Nagle's algorithm off only on sockets whose proto is IPPROTO_TCP, and
`tests.support.ports.bound_socket` makes its socket with proto 0. uvicorn writes a response's
head and body separately, so on a kept-alive connection the body then waits for the client's
delayed ACK: about 40 ms per request. Harmless for a few requests; this is for many.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


def nodelay_socket() -> socket.socket:
    """A socket on a free loopback port whose accepted connections get TCP_NODELAY from asyncio."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in this loop; yield its base URL."""
    sock = nodelay_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", loop="none"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what made startup fail
                raise RuntimeError("server exited during startup")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
