"""Prometheus metrics of the gateway, served at `GET /metrics`.

HTTP requests are counted and timed by Litestar's Prometheus plugin; the review series are ours.
The plugin keeps its metrics in prometheus-client's default registry, created once per process
and shared by every app built in it (the tests build many), so ours live there too, created once
at import: two apps never register a series twice, and a scrape shows the whole process.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController, PrometheusMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter

log = logging.getLogger("gateway.metrics")

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

CHECKED_MODULES = Counter(
    "gateway_checked_modules",
    "Modules POST /checks answered, by outcome (ok | error: not checked, the module's `error` says why)",
    ["outcome"],
)


def record_checked_modules(*, ok: int, failed: int) -> None:
    CHECKED_MODULES.labels("ok").inc(ok)
    CHECKED_MODULES.labels("error").inc(failed)


def record_review(provider: str, outcome: str, *, cached: bool) -> None:
    REVIEWS.labels(provider, outcome, "true" if cached else "false").inc()


# The most tokens one answer is believed to have cost: 2**53, the largest count a float (what a
# counter holds) keeps exact; a larger int does not even convert (OverflowError).
MAX_TOKENS = 2**53


def record_tokens(provider: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Count what a provider says a review cost; a count below 0 or over MAX_TOKENS is logged and
    not counted. Never raises: the counts are the provider's word (a counter refuses to go down,
    and a float cannot hold a 400-digit int), and its bad bookkeeping must not fail a review."""
    for direction, tokens in (("in", prompt_tokens), ("out", completion_tokens)):
        if 0 <= tokens <= MAX_TOKENS:
            MODEL_TOKENS.labels(provider, direction).inc(tokens)
        else:
            # Not str() of it: past 4,300 digits Python refuses to write an int out (ValueError).
            shown = str(tokens) if abs(tokens) < 10**20 else f"a {tokens.bit_length()}-bit number of"
            log.warning("%s reported %s %s tokens: not counted", provider, shown, direction)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


class _Series:
    """One label set's children of the plugin's four series, looked up once."""

    __slots__ = ("count", "duration", "errors", "in_progress")

    def __init__(self, middleware: PrometheusMiddleware, labels: dict[str, str | int | float]) -> None:
        values = [*labels.values()]
        # The plugin's in-progress series is labelled before the status is known: always 200.
        in_progress = {**labels, "status_code": 200}
        self.in_progress = middleware.requests_in_progress(labels).labels(*in_progress.values())
        self.count = middleware.request_count(labels).labels(*values)
        self.duration = middleware.request_time(labels).labels(*values)
        self.errors = middleware.requests_error_count(labels).labels(*values)


class CachedLabelsMiddleware(PrometheusMiddleware):
    """Litestar's Prometheus middleware: the same series and labels, for less of the gateway's time.

    The plugin builds a Request and calls prometheus-client's `labels()` four times a request, each
    validating and converting the label values: most of its ~60 us a request, of the gateway's 1 ms
    overhead budget. This looks each (method, route, status) up once; routes and statuses are few.
    It supports what `http_metrics` configures (route templates, no extra labels or exemplars).
    """

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app, config)
        self._series: dict[tuple[str, str, int], _Series] = {}

    def _labelled(self, method: str, path: str, status: int) -> _Series:
        key = (method, path, status)
        series = self._series.get(key)
        if series is None:
            labels: dict[str, str | int | float] = {
                "method": method,
                "path": path,
                "status_code": status,
                "app_name": self._config.app_name,
            }
            series = self._series[key] = _Series(self, labels)
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method") or scope["type"])
        path = str(scope["path_template"])
        started = time.perf_counter()
        span: dict[str, Any] = {"status": 200, "duration": 0.0}

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                span["status"] = message["status"]
            elif message["type"] == "http.response.body":
                span["duration"] = time.perf_counter() - started
            await send(message)

        in_progress = self._labelled(method, path, 200).in_progress
        in_progress.inc()
        try:
            await self.app(scope, receive, timed_send)
        finally:
            in_progress.dec()
            series = self._labelled(method, path, span["status"])
            if span["status"] >= 500:
                series.errors.inc()
            series.count.inc()
            series.duration.observe(span["duration"])


def http_metrics() -> DefineMiddleware:
    """The plugin's series (`codereview_requests_total`, `codereview_request_duration_seconds`, ...)
    per route template (not per raw path, which a caller could make unbounded) and status."""
    config = PrometheusConfig(
        app_name="gateway",
        prefix="codereview",
        group_path=True,
        exclude=["^/metrics$"],
        middleware_class=CachedLabelsMiddleware,
    )
    return config.middleware
