"""Gateway overhead: the same chat completion through the gateway and straight to the upstream.

An instant OpenAI-shaped upstream (uvicorn process, fixed answer) and the gateway (`python -m
gateway`, LLM_PROVIDER=local pointed at it) run as their own processes; one client alternates
requests to both over keep-alive connections, so drift and noise hit both sides alike.
Figures: p50/p99 per path and the overhead (gateway minus direct) for a passthrough chat
completion and the same streamed, then `/analyze` answered from the review cache.
Target: p50 overhead <= 1 ms.

Options: --requests=N (measured pairs per scenario, default 2000), --warmup=N (default 200).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway.http1 import Http1Client
from tests.support.asgi import read_body

ROOT = Path(__file__).resolve().parents[1]
MODEL = "instant-model"
_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": '{"suggestions": ["Return early."]}'},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()
_CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"instant-model",'
    b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
)
_MODELS = json.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
).encode()


async def instant_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The instant upstream: answers every chat completion at once, streamed when asked."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if scope["path"].endswith("/models"):
        payload, content_type = _MODELS, b"application/json"
    elif b'"stream":true' in body.replace(b" ", b""):
        payload, content_type = _CHUNK * 3 + b"data: [DONE]\n\n", b"text/event-stream"
    else:
        payload, content_type = _COMPLETION, b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": payload})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(argv: list[str], env: dict[str, str], url: str, stack: ExitStack) -> None:
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    stack.callback(process.wait)
    stack.callback(process.terminate)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not answer {url} within 60 s")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _pairs(
    gateway: Callable[[], Awaitable[None]],
    direct: Callable[[], Awaitable[None]] | None,
    requests: int,
    warmup: int,
) -> tuple[list[float], list[float]]:
    through: list[float] = []
    straight: list[float] = []
    for index in range(warmup + requests):
        started = time.perf_counter()
        await gateway()
        elapsed = time.perf_counter() - started
        if index >= warmup:
            through.append(elapsed)
        if direct is not None:
            started = time.perf_counter()
            await direct()
            elapsed = time.perf_counter() - started
            if index >= warmup:
                straight.append(elapsed)
    return through, straight


def _line(name: str, values: list[float]) -> str:
    p50, p99 = _percentile(values, 0.5) * 1000, _percentile(values, 0.99) * 1000
    return f"{name:<38} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


async def _measure(gateway_url: str, upstream_url: str, requests: int, warmup: int) -> None:
    chat = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    streamed = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    review = json.dumps({"function_code": "def add(a, b): return a + b"}).encode()
    # The same lean keep-alive client measures both paths, so client cost cancels out.
    client = Http1Client(connect_timeout=5, read_timeout=30)
    headers = {"content-type": "application/json"}

    def post(url: str, body: bytes, stream: bool = False) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            response = await client.send("POST", url, headers=headers, body=body, stream=stream)
            if stream:
                async for _ in response.aiter_raw():
                    pass
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")

        return call

    chat_path = "/v1/chat/completions"
    scenarios = [
        ("chat completion", post(gateway_url + chat_path, chat), post(upstream_url + chat_path, chat)),
        (
            "chat completion, streamed",
            post(gateway_url + chat_path, streamed, stream=True),
            post(upstream_url + chat_path, streamed, stream=True),
        ),
    ]
    for name, through_gateway, direct in scenarios:
        through, straight = await _pairs(through_gateway, direct, requests, warmup)
        overhead = [a - b for a, b in zip(through, straight, strict=True)]
        print(_line(f"{name}: direct", straight))
        print(_line(f"{name}: via gateway", through))
        p50 = (_percentile(through, 0.5) - _percentile(straight, 0.5)) * 1000
        print(
            f"{name + ': overhead':<38} p50 {p50:7.3f} ms"
            f"   (median of pairwise differences {_percentile(overhead, 0.5) * 1000:.3f} ms)",
            flush=True,
        )
    cached, _ = await _pairs(post(gateway_url + "/analyze", review), None, max(requests // 4, 50), 5)
    print(_line("/analyze, review from the cache", cached), flush=True)
    await client.aclose()


def main(argv: list[str]) -> None:
    options = dict(
        arg.removeprefix("--").split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg
    )
    requests = int(options.get("requests", 2000))
    warmup = int(options.get("warmup", 200))
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    print(
        f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.1f}"
    )
    upstream_port, gateway_port = _free_port(), _free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    with ExitStack() as stack:
        _start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.gateway:instant_upstream",
                "--port",
                str(upstream_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            {},
            upstream_url + "/v1/models",
            stack,
        )
        _start(
            [sys.executable, "-m", "gateway"],
            {
                "GATEWAY_PORT": str(gateway_port),
                "LLM_PROVIDER": "local",
                "LLM_FALLBACK": "",
                "LOCAL_LLM_BASE_URL": upstream_url + "/v1",
                "LOCAL_LLM_MODEL": MODEL,
                "LOCAL_LLM_SSH_HOST": "",
                "NATS_URL": "",
                "LOG_LEVEL": "WARNING",
            },
            gateway_url + "/health",
            stack,
        )
        print(
            f"{requests} measured requests per path and scenario after {warmup} warm-up, alternating",
            flush=True,
        )
        asyncio.run(_measure(gateway_url, upstream_url, requests, warmup))


if __name__ == "__main__":
    main(sys.argv[1:])
