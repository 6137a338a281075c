"""Prometheus metrics of the fetcher, served at `GET /metrics` on its health port.

Messages consumed and published are counted and timed by FastStream's own Prometheus middleware
(`faststream_*` series); the job series are ours. Everything lives in prometheus-client's default
registry, one per process: FastStream's middleware reuses a series already registered there, and
ours are created once at import, so the many apps the tests build never register one twice.
"""

from __future__ import annotations

from typing import Any

from faststream.nats.prometheus import NatsPrometheusMiddleware
from prometheus_client import REGISTRY, Counter, Histogram, make_asgi_app

JOBS = Counter(
    "fetcher_jobs",
    "Deliveries of fetch requests, by how they ended: ready, failed, retry, finished-before, invalid",
    ["outcome"],
)
FETCH_DURATION = Histogram(
    "fetcher_fetch_duration_seconds",
    "Time to handle one delivery of a fetch request (download, read, store, update the job), by outcome",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
DOWNLOADED_BYTES = Counter("fetcher_downloaded_bytes", "Bytes of repository tarballs downloaded from GitHub")
STORED_BYTES = Counter(
    "fetcher_snapshot_bytes",
    "Bytes of Python files kept in the snapshots of the jobs made ready by a download",
)


def record_delivery(outcome: str, seconds: float) -> None:
    JOBS.labels(outcome).inc()
    FETCH_DURATION.labels(outcome).observe(seconds)


def broker_middleware() -> NatsPrometheusMiddleware:
    return NatsPrometheusMiddleware(registry=REGISTRY, app_name="fetcher")


def metrics_app() -> Any:
    """The ASGI app answering GET /metrics with the process's registry."""
    return make_asgi_app(REGISTRY)
