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

Case `review` (prompt speed): the gateway's own review request (its system prompt and schema,
`gateway.prompt`) for a different ~40-line function every round, streamed so that the first text
marks the end of prompt reading. Figures: median and best seconds per review and to the first
token, prompt and completion tokens (how many the small model writes varies with the threads:
float sums in another order pick other tokens). Issue #10's
target: median <= 1.5 s with the bundled model on a 2-core machine.

Options: --case=overhead|review|all (default all), --rounds=N (default 7), --tokens=N (default 128),
--threads=N, --batch_threads=N (default: model_host's; the overhead case reads its
prompt with --threads).
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
from typing import Any, cast

from openai import OpenAI

from model_host.engines import repack_setting
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


CASES = ("overhead", "review")


def _options(argv: list[str]) -> tuple[str, dict[str, int]]:
    options = {"rounds": 7, "tokens": 128, "threads": 0, "batch_threads": 0}
    case = "all"
    for arg in argv:
        name, _, value = arg.lstrip("-").partition("=")
        if name == "case" and value in (*CASES, "all"):
            case = value
        elif name in options and value.isdigit():
            options[name] = int(value)
        else:
            raise SystemExit(
                f"unknown option {arg!r}; use --case=overhead|review|all "
                "--rounds=N --tokens=N --threads=N --batch_threads=N"
            )
    return case, options


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(env_overrides: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "MODEL_HOST_PORT": str(port), "LOG_LEVEL": "WARNING", **env_overrides}
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


def _overhead(options: dict[str, int]) -> None:
    import llama_cpp

    settings = Settings(_env_file=None, model_context_size=CONTEXT)
    threads = options["threads"] or settings.threads()
    path = settings.resolved_model_path()
    print(
        f"case overhead: model {path.name}, context {CONTEXT}, threads {threads}, "
        f"{options['tokens']} tokens, temperature 0, {options['rounds']} rounds",
        flush=True,
    )
    server, url = _start_server({"MODEL_CONTEXT_SIZE": str(CONTEXT), "MODEL_THREADS": str(threads)})
    try:
        with repack_setting(settings.model_repack_weights):  # the same weights layout as model_host's
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


def review_function(variant: int) -> str:
    """A plausible 40-line function; `variant` changes names and numbers, so no two prompts are equal."""
    lines = [
        f"def summarize_orders_{variant}(orders, currency='EUR', threshold={variant * 10 + 5}):",
        '    """Group paid orders by customer and return totals above the threshold."""',
        "    totals = {}",
        "    skipped = 0",
        "    for order in orders:",
        "        if order.get('status') != 'paid':",
        "            skipped += 1",
        "            continue",
        "        customer = order['customer_id']",
        "        amount = order['amount']",
        "        if order.get('currency', currency) != currency:",
        f"            rate = RATES.get(order['currency'], {variant + 1}.0)",
        "            amount = amount * rate",
        "        if customer not in totals:",
        "            totals[customer] = {'count': 0, 'sum': 0.0, 'max': 0.0}",
        "        entry = totals[customer]",
        "        entry['count'] += 1",
        "        entry['sum'] += amount",
        "        if amount > entry['max']:",
        "            entry['max'] = amount",
        "    result = []",
        "    for customer, entry in totals.items():",
        "        if entry['sum'] < threshold:",
        "            continue",
        "        average = entry['sum'] / entry['count']",
        "        result.append({",
        "            'customer': customer,",
        "            'total': round(entry['sum'], 2),",
        "            'average': round(average, 2),",
        "            'largest': entry['max'],",
        f"            'rank': {variant},",
        "        })",
        "    result.sort(key=lambda r: r['total'], reverse=True)",
        "    if skipped:",
        "        print('skipped', skipped, 'unpaid orders')",
        "    try:",
        "        log_summary(result)",
        "    except:",
        "        pass",
        "    return result",
    ]
    return "\n".join(lines)


def _review(options: dict[str, int]) -> None:
    from gateway.prompt import response_format, review_messages
    from gateway.settings import Settings as GatewaySettings

    gateway = GatewaySettings(_env_file=None)
    limit, max_tokens = gateway.review_max_suggestions, gateway.review_max_tokens
    env = {
        variable: str(options[name])
        for name, variable in (("threads", "MODEL_THREADS"), ("batch_threads", "MODEL_BATCH_THREADS"))
        if options[name]
    }
    server, url = _start_server(env)
    seconds: list[float] = []
    ttft: list[float] = []
    prompt_tokens: list[int] = []
    completion_tokens: list[int] = []
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=600)
        model = client.models.list().data[0].id
        print(
            f"case review: model {model}, model_host's default settings {env or ''}, "
            f"gateway prompt (at most {limit} suggestions, max_tokens {max_tokens}, "
            f"temperature {gateway.review_temperature}), {options['rounds']} rounds after 1 warm-up",
            flush=True,
        )
        for variant in range(options["rounds"] + 1):
            started = time.perf_counter()
            first: float | None = None
            usage = None
            messages: Any = review_messages(review_function(variant), limit)
            # Streamed, as one request: the first text marks the end of prompt reading (and one token).
            for chunk in client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=gateway.review_temperature,
                response_format=cast(Any, response_format("json_schema_bounded", limit)),
                seed=variant,
                stream=True,
                stream_options={"include_usage": True},
            ):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
                usage = chunk.usage or usage
            elapsed = time.perf_counter() - started
            if variant == 0 or usage is None or first is None:
                continue  # the warm-up fills the prefix cache, as the first review after a start does
            seconds.append(elapsed)
            ttft.append(first - started)
            prompt_tokens.append(usage.prompt_tokens)
            completion_tokens.append(usage.completion_tokens)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"review  seconds p50 {statistics.median(seconds):.2f} best {min(seconds):.2f} "
        f"worst {max(seconds):.2f}   first token (prompt read) p50 {statistics.median(ttft):.2f} s "
        f"best {min(ttft):.2f}   prompt tokens p50 {statistics.median(prompt_tokens):.0f}   "
        f"completion tokens p50 {statistics.median(completion_tokens):.0f}   runs {len(seconds)} "
        f"(target p50 <= 1.5 s: {'met' if statistics.median(seconds) <= 1.5 else 'NOT met'})",
        flush=True,
    )


def main(argv: list[str]) -> None:
    case, options = _options(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus", flush=True)
    if case in ("overhead", "all"):
        _overhead(options)
    if case in ("review", "all"):
        _review(options)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average after the run: {load:.2f} (other work on the machine skews every figure)")


if __name__ == "__main__":
    main(sys.argv[1:])
