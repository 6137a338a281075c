"""Prometheus metrics of the gateway, served at `GET /metrics`.

HTTP requests are counted and timed by Litestar's Prometheus plugin; the review series are ours.
The plugin keeps its metrics in prometheus-client's default registry, created once per process
and shared by every app built in it (the tests build many), so ours live there too, created once
at import: two apps never register a series twice, and a scrape shows the whole process.
"""

from __future__ import annotations

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import Counter

REVIEWS = Counter(
    "gateway_reviews",
    "Reviews answered (or failed), by provider, outcome (ok | degraded | failed) and cache hit",
    ["provider", "outcome", "cached"],
)
MODEL_TOKENS = Counter(
    "gateway_model_tokens",
    "Tokens the providers reported for reviews, by provider and direction (in = prompt, out = completion)",
    ["provider", "direction"],
)


def record_review(provider: str, outcome: str, *, cached: bool) -> None:
    REVIEWS.labels(provider, outcome, "true" if cached else "false").inc()


def record_tokens(provider: str, prompt_tokens: int, completion_tokens: int) -> None:
    MODEL_TOKENS.labels(provider, "in").inc(prompt_tokens)
    MODEL_TOKENS.labels(provider, "out").inc(completion_tokens)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def http_metrics() -> DefineMiddleware:
    """The plugin's middleware: `codereview_requests_total` and `codereview_request_duration_seconds`
    per route template (not per raw path, which a caller could make unbounded) and status."""
    return PrometheusConfig(
        app_name="gateway", prefix="codereview", group_path=True, exclude=["^/metrics$"]
    ).middleware
