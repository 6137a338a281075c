"""Prometheus metrics of the analyzer, served at `GET /metrics`.

HTTP requests are counted and timed by Litestar's Prometheus plugin; the job series is ours.
The plugin keeps its metrics in prometheus-client's default registry, one per process and shared
by every app built in it (the tests build many), so ours live there too, created once at import.
The fetcher counts the jobs' later states (fetcher_jobs_total); this counts what the analyzer decides.
"""

from __future__ import annotations

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import Counter

JOBS = Counter(
    "analyzer_jobs",
    "Jobs created, by status: queued (fetch request on the work queue) or failed (it could not be queued)",
    ["status"],
)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def http_metrics() -> DefineMiddleware:
    """The plugin's middleware: `codereview_requests_total` and `codereview_request_duration_seconds`
    per route template (not per raw path, which holds job ids) and status."""
    config = PrometheusConfig(
        app_name="analyzer", prefix="codereview", group_path=True, exclude=["^/metrics$"]
    )
    return config.middleware
