"""Reading a Prometheus scrape in tests: the value of one series, found by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0.0 when none: never seen).

    Services share the process's default registry in tests, so tests compare a scrape before and after.
    """
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(key) == value for key, value in labels.items())
    )


async def scrape(client: httpx.AsyncClient, path: str = "/metrics") -> str:
    """GET the metrics page; it must answer 200 in Prometheus's text format."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text
