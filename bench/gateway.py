"""Gateway overhead: the same chat completion through the gateway and straight to the upstream.

An instant OpenAI-shaped upstream (uvicorn process, fixed answer) and the gateway (`python -m
gateway`, LLM_PROVIDER=local pointed at it) run as their own processes; one client alternates
requests to both over keep-alive connections, so drift and noise hit both sides alike.
Figures: p50/p95/p99 per path and the overhead (gateway minus direct) for a passthrough chat
completion and the same streamed, then `/analyze` answered from the review cache.
Target: p50 overhead <= 1 ms.

LiteLLM's proxy, measured on the same upstream the same way, is printed beside it when it is
installed in a throwaway venv (never the project's): `python3 -m venv /tmp/litellm-venv &&
/tmp/litellm-venv/bin/pip install 'litellm[proxy]'`; LITELLM_BIN names another `litellm` binary.

Options: --requests=N (measured pairs per scenario, default 2000), --warmup=N (default 200),
--access=1 (the gateway with four CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT=1000/second, the
highest allowed, which this client does not reach; it sends the last key: what the key check and
the limiter cost per request, the limiter at its largest history); --access=keys: the keys only.
The gateway logs at WARNING (nothing per request) unless LOG_LEVEL is set: `LOG_LEVEL=INFO
LOG_FORMAT=json` measures what two log lines per `/analyze` cost in that format.
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

import aiohttp

from tests.support.asgi import read_body

ROOT = Path(__file__).resolve().parents[1]
_LITELLM_KEY = "sk-bench-master-key-not-secret"  # loopback only, thrown away
# --access=1: the key is the last of four, so every one is compared (as they always are).
_ACCESS_KEYS = [
    "bench-key-a-0123456789",
    "bench-key-b-0123456789",
    "bench-key-c-0123456789",
    "bench-key-d-0123",
]
_ACCESS_ENV = {"CODEREVIEW_API_KEYS": ",".join(_ACCESS_KEYS), "CODEREVIEW_RATE_LIMIT": "1000/second"}
LITELLM = Path(os.environ.get("LITELLM_BIN", "/tmp/litellm-venv/bin/litellm"))  # noqa: S108 - a throwaway venv
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


def _start(argv: list[str], env: dict[str, str], url: str, stack: ExitStack, wait_s: float = 60) -> int:
    process = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stack.callback(process.wait)
    stack.callback(process.terminate)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return process.pid
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not answer {url} within {wait_s:.0f} s")


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
    p50, p95, p99 = (_percentile(values, q) * 1000 for q in (0.5, 0.95, 0.99))
    return f"{name:<38} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   p99 {p99:7.3f} ms"


def _overhead(name: str, through: list[float], straight: list[float]) -> str:
    p50, p95 = ((_percentile(through, q) - _percentile(straight, q)) * 1000 for q in (0.5, 0.95))
    pairwise = _percentile([a - b for a, b in zip(through, straight, strict=True)], 0.5) * 1000
    return (
        f"{name + ': overhead':<38} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms"
        f"   (median of pairwise differences {pairwise:.3f} ms)"
    )


def _poster(
    client: aiohttp.ClientSession, headers: dict[str, str] | None = None
) -> Callable[[str, bytes], Callable[[], Awaitable[None]]]:
    sent = {"content-type": "application/json", **(headers or {})}

    def post(url: str, body: bytes) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            async with client.post(url, data=body, headers=sent) as response:
                await response.read()  # streamed or not: the whole body, as a caller reads it
                if response.status != 200:
                    raise RuntimeError(f"{url}: HTTP {response.status}")

        return call

    return post


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` so far (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    gateway_url: str, upstream_url: str, requests: int, warmup: int, gateway_pid: int, headers: dict[str, str]
) -> None:
    chat = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    streamed = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    review = json.dumps({"function_code": "def add(a, b): return a + b"}).encode()
    # The same keep-alive client measures both paths, so its own cost cancels out.
    client = aiohttp.ClientSession()
    # The key goes to both sides (the upstream ignores it), so sending it costs the same on each.
    post = _poster(client, headers)

    chat_path = "/v1/chat/completions"
    scenarios = [
        ("chat completion", post(gateway_url + chat_path, chat), post(upstream_url + chat_path, chat)),
        (
            "chat completion, streamed",
            post(gateway_url + chat_path, streamed),
            post(upstream_url + chat_path, streamed),
        ),
    ]
    for name, through_gateway, direct in scenarios:
        cpu_before = _cpu_seconds(gateway_pid)
        through, straight = await _pairs(through_gateway, direct, requests, warmup)
        cpu_after = _cpu_seconds(gateway_pid)
        print(_line(f"{name}: direct", straight))
        print(_line(f"{name}: via gateway", through))
        print(_overhead(name, through, straight), flush=True)
        if cpu_before is not None and cpu_after is not None:
            # Load-independent: what the gateway's process spends per request, whatever else runs.
            per_request = (cpu_after - cpu_before) / (requests + warmup) * 1000
            print(f"{name + ': gateway CPU':<38} {per_request:.3f} ms per request", flush=True)
    cached, _ = await _pairs(post(gateway_url + "/analyze", review), None, max(requests // 4, 50), 5)
    print(_line("/analyze, review from the cache", cached), flush=True)
    await client.close()


async def _measure_litellm(litellm_url: str, upstream_url: str, requests: int, warmup: int) -> None:
    chat = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    client = aiohttp.ClientSession()
    post = _poster(client, {"authorization": f"Bearer {_LITELLM_KEY}"})
    path = "/v1/chat/completions"
    through, straight = await _pairs(
        post(litellm_url + path, chat), post(upstream_url + path, chat), requests, warmup
    )
    print(_line("LiteLLM chat completion: direct", straight))
    print(_line("LiteLLM chat completion: via LiteLLM", through))
    print(_overhead("LiteLLM chat completion", through, straight), flush=True)
    await client.close()


def _litellm(upstream_url: str, requests: int, warmup: int) -> None:
    """LiteLLM's proxy in front of the same instant upstream, if it is installed (see the docstring)."""
    if not LITELLM.exists():
        print(f"LiteLLM: not measured ({LITELLM} is not there; see `bench/gateway.py`'s docstring)")
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        _start(
            [
                str(LITELLM),
                "--model",
                f"openai/{MODEL}",
                "--alias",
                MODEL,
                "--api_base",
                upstream_url + "/v1",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            {
                "OPENAI_API_KEY": "sk-bench",
                "LITELLM_LOG": "ERROR",
                "LITELLM_MASTER_KEY": _LITELLM_KEY,
                "DISABLE_ADMIN_UI": "True",
            },
            url + "/health/liveliness",
            stack,
            wait_s=180,
        )
        # LiteLLM is measured with fewer requests: it is ~20x slower per request.
        asyncio.run(_measure_litellm(url, upstream_url, max(requests // 4, 100), max(warmup // 4, 20)))


def main(argv: list[str]) -> None:
    options = dict(
        arg.removeprefix("--").split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg
    )
    requests = int(options.get("requests", 2000))
    warmup = int(options.get("warmup", 200))
    access = options.get("access", "0") in ("1", "keys")
    access_env = (
        {**_ACCESS_ENV, "CODEREVIEW_RATE_LIMIT": ""} if options.get("access") == "keys" else _ACCESS_ENV
    )
    headers = {"authorization": f"Bearer {_ACCESS_KEYS[-1]}"} if access else {}
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
        gateway_pid = _start(
            [sys.executable, "-m", "gateway"],
            {
                "GATEWAY_PORT": str(gateway_port),
                "LLM_PROVIDER": "local",
                "LLM_FALLBACK": "",
                "LOCAL_LLM_BASE_URL": upstream_url + "/v1",
                "LOCAL_LLM_MODEL": MODEL,
                "LOCAL_LLM_SSH_HOST": "",
                "NATS_URL": "",
                # LOG_LEVEL=INFO (and LOG_FORMAT=text|json) from the environment: what logging costs.
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
                **(access_env if access else {"CODEREVIEW_API_KEYS": "", "CODEREVIEW_RATE_LIMIT": ""}),
            },
            gateway_url + "/health",
            stack,
        )
        print(
            f"{requests} measured requests per path and scenario after {warmup} warm-up, alternating"
            + (f", the gateway with {' and '.join(k for k, v in access_env.items() if v)}" if access else ""),
            flush=True,
        )
        asyncio.run(_measure(gateway_url, upstream_url, requests, warmup, gateway_pid, headers))
        _litellm(upstream_url, requests, warmup)


if __name__ == "__main__":
    main(sys.argv[1:])
