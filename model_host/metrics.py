"""Prometheus metrics of model_host, served at `GET /metrics`.

HTTP requests are counted and timed by Litestar's Prometheus plugin; tokens and the queue are ours.
The plugin keeps its metrics in prometheus-client's default registry, one per process and shared
by every app built in it (the tests build many), so ours live there too, created once at import.
"""

from __future__ import annotations

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import Counter, Gauge, Histogram

TOKENS = Counter(
    "model_host_tokens", "Tokens processed, by direction (in = prompt, out = generated)", ["direction"]
)
TOKENS_PER_SECOND = Histogram(
    "model_host_generation_tokens_per_second",
    "Generated tokens per second of one completion, from its first token asked to its last",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
QUEUE_DEPTH = Gauge("model_host_queue_depth", "Requests waiting for the model while one generates")
QUEUE_WAIT = Histogram(
    "model_host_queue_wait_seconds",
    "How long a request waited for its turn at the model (0 when it was free)",
    buckets=(0.005, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def record_generation(prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
    TOKENS.labels("in").inc(prompt_tokens)
    TOKENS.labels("out").inc(completion_tokens)
    if completion_tokens and seconds > 0:
        TOKENS_PER_SECOND.observe(completion_tokens / seconds)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def http_metrics() -> DefineMiddleware:
    """The plugin's middleware: `codereview_requests_total` and `codereview_request_duration_seconds`
    per route template (not per raw path, which a caller could make unbounded) and status."""
    config = PrometheusConfig(
        app_name="model_host", prefix="codereview", group_path=True, exclude=["^/metrics$"]
    )
    return config.middleware
