"""model_host overhead: the same greedy generation through the HTTP route and llama-cpp-python directly.

model_host runs as its own process (`python -m model_host`, the bundled SmolLM2 GGUF); this
process loads the same file with llama-cpp-python, the same context size and threads, and calls
`Llama.create_chat_completion(stream=True)`. Rounds alternate between the two (only one of them
generates at any time), after one warm-up each, so drift hits both alike. Both ask for the same
prompt, temperature 0 and `max_tokens` tokens, and both must end with finish_reason "length".

Figures per path (medians over the rounds): time to first token (first content chunk, measured by
the client), tokens per second end to end (completion tokens / time to the last token) and decode
tokens per second (tokens after the first / time between first and last). Ratio: HTTP / direct,
of the medians and of the best runs (the best run is the one least disturbed by other work).
Target: HTTP tokens/s >= 0.95 x direct.

Options: --rounds=N (default 7), --tokens=N (default 128), --threads=N (default: model_host's).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI

from model_host.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a very long story about a dragon."
CONTEXT = 1024


@dataclass
class Run:
    ttft_s: float
    total_s: float
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s

    @property
    def decode_tokens_per_s(self) -> float:
        return (self.tokens - 1) / (self.total_s - self.ttft_s)


def _options(argv: list[str]) -> dict[str, int]:
    options = {"rounds": 7, "tokens": 128, "threads": 0}
    for arg in argv:
        name, _, value = arg.lstrip("-").partition("=")
        if name not in options or not value.isdigit():
            raise SystemExit(f"unknown option {arg!r}; use --rounds=N --tokens=N --threads=N")
        options[name] = int(value)
    return options


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "MODEL_HOST_PORT": str(port),
        "MODEL_CONTEXT_SIZE": str(CONTEXT),
        "MODEL_THREADS": str(threads),
        "MODEL_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "-m", "model_host"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"model_host exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return server, url
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    server.terminate()
    raise SystemExit("model_host did not become healthy in 120 s")


def _http_run(client: OpenAI, model: str, tokens: int) -> Run:
    started = time.perf_counter()
    first: float | None = None
    usage_tokens = 0
    finish = None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = started
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
        if chunk.usage is not None:
            usage_tokens = chunk.usage.completion_tokens
    if finish != "length" or first is None:
        raise SystemExit(f"HTTP run ended with {finish!r}, not 'length': pick a longer prompt")
    return Run(ttft_s=first - started, total_s=last - started, tokens=usage_tokens)


def _direct_run(llama: Any, tokens: int) -> Run:
    started = time.perf_counter()
    first: float | None = None
    finish = None
    last = started
    for chunk in llama.create_chat_completion(
        messages=[{"role": "user", "content": PROMPT}], max_tokens=tokens, temperature=0, stream=True
    ):
        choice = chunk["choices"][0]
        if choice["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
        finish = choice.get("finish_reason") or finish
    if finish != "length" or first is None:
        raise SystemExit(f"direct run ended with {finish!r}, not 'length': pick a longer prompt")
    # Streaming leaves usage out; ending on "length" means exactly `tokens` were generated.
    return Run(ttft_s=first - started, total_s=last - started, tokens=tokens)


def _summary(name: str, runs: list[Run]) -> tuple[float, float, float, float]:
    ttft = statistics.median(r.ttft_s for r in runs)
    rate = statistics.median(r.tokens_per_s for r in runs)
    decode = statistics.median(r.decode_tokens_per_s for r in runs)
    best = max(r.tokens_per_s for r in runs)
    print(
        f"{name:<7} ttft p50 {ttft * 1000:7.1f} ms   tokens/s p50 {rate:6.1f} (end to end), "
        f"best {best:6.1f}   decode tokens/s p50 {decode:6.1f}   runs {len(runs)}",
        flush=True,
    )
    return ttft, rate, decode, best


def main(argv: list[str]) -> None:
    import llama_cpp

    options = _options(argv)
    settings = Settings(_env_file=None, model_context_size=CONTEXT)
    threads = options["threads"] or settings.threads()
    path = settings.resolved_model_path()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
        f"model {path.name}, context {CONTEXT}, threads {threads}, {options['tokens']} tokens, "
        f"temperature 0, {options['rounds']} rounds",
        flush=True,
    )
    server, url = _start_server(threads)
    try:
        llama = llama_cpp.Llama(
            model_path=str(path), n_ctx=CONTEXT, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        client = OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=600)
        model = client.models.list().data[0].id
        _http_run(client, model, options["tokens"])  # warm-up
        _direct_run(llama, options["tokens"])
        http: list[Run] = []
        direct: list[Run] = []
        for _ in range(options["rounds"]):
            http.append(_http_run(client, model, options["tokens"]))
            direct.append(_direct_run(llama, options["tokens"]))
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    http_ttft, http_rate, http_decode, http_best = _summary("http", http)
    direct_ttft, direct_rate, direct_decode, direct_best = _summary("direct", direct)
    ratio = http_rate / direct_rate
    verdict = "met" if ratio >= 0.95 else "NOT met"
    print(
        f"ratio http/direct: tokens/s p50 {ratio:.3f} (target >= 0.95: {verdict}), "
        f"best {http_best / direct_best:.3f}, decode p50 {http_decode / direct_decode:.3f}, "
        f"ttft p50 {http_ttft / direct_ttft:.3f}",
        flush=True,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average after the run: {load:.2f} (other work on the machine skews both paths)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
