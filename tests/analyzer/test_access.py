"""CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT on the analyzer, against a real nats-server.

Without them the routes are open and unlimited: every other test of the analyzer runs that way.
The keys and the limit's form are tested once for both services in tests/servicekit/test_access.py.
"""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from analyzer.app import create_app
from tests.analyzer.helpers import settings_without_gateway

pytestmark = pytest.mark.nats

START = {"repo_url": "https://github.com/octo/hello"}


async def test_keys_turn_away_a_request_without_one_or_with_a_wrong_one(nats_url: str) -> None:
    app = create_app(
        settings_without_gateway(nats_url, codereview_api_keys="first-key-0123, second-key-4567")
    )
    async with AsyncTestClient(app) as client:
        missing = await client.post("/analyze/start", json=START)
        wrong = await client.post(
            "/analyze/start", json=START, headers={"Authorization": "Bearer first-key-012"}
        )
        basic = await client.post(
            "/analyze/start", json=START, headers={"Authorization": "Basic first-key-0123"}
        )
        bare = await client.post("/analyze/start", json=START, headers={"Authorization": "first-key-0123"})
    for response in (missing, wrong, basic, bare):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["x-request-id"]
        assert set(response.json()) == {"status_code", "detail"}
        assert response.json()["status_code"] == 401
    assert "requires an API key" in missing.json()["detail"]
    assert "missing or wrong API key" in wrong.json()["detail"]
    assert "first-key" not in wrong.text


async def test_any_of_the_keys_is_let_in_and_health_metrics_and_schema_need_none(nats_url: str) -> None:
    app = create_app(settings_without_gateway(nats_url, codereview_api_keys="first-key-0123,second-key-4567"))
    async with AsyncTestClient(app) as client:
        started = await client.post(
            "/analyze/start", json=START, headers={"Authorization": "Bearer second-key-4567"}
        )
        job = await client.get(
            f"/analyze/jobs/{started.json()['job_id']}", headers={"Authorization": "bearer first-key-0123"}
        )
        health = await client.get("/health")
        schema = await client.get("/schema/openapi.json")
        metrics = await client.get("/metrics")
    assert started.status_code == 200, started.text
    assert list(started.json()) == ["job_id"]
    assert job.status_code == 200
    assert health.status_code == 200
    assert schema.status_code == 200
    assert metrics.status_code == 200


async def test_a_rate_limit_answers_429_with_retry_after_per_client(nats_url: str) -> None:
    app = create_app(
        settings_without_gateway(
            nats_url, codereview_api_keys="first-key-0123,second-key-4567", codereview_rate_limit="2/minute"
        )
    )
    first = {"Authorization": "Bearer first-key-0123"}
    async with AsyncTestClient(app) as client:
        allowed = [(await client.get("/analyze/jobs/nosuchjob", headers=first)).status_code for _ in range(2)]
        refused = await client.get("/analyze/jobs/nosuchjob", headers=first)
        other_key = await client.get(
            "/analyze/jobs/nosuchjob", headers={"Authorization": "Bearer second-key-4567"}
        )
        health = [(await client.get("/health")).status_code for _ in range(3)]
    assert allowed == [404, 404]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status_code"] == 429
    assert "CODEREVIEW_RATE_LIMIT" in refused.json()["detail"]
    assert refused.headers["x-request-id"]
    assert other_key.status_code == 404
    assert health == [200, 200, 200]


async def test_wrong_keys_count_against_the_sender_so_guessing_is_limited(nats_url: str) -> None:
    app = create_app(
        settings_without_gateway(
            nats_url, codereview_api_keys="first-key-0123", codereview_rate_limit="2/hour"
        )
    )
    async with AsyncTestClient(app) as client:
        guesses = [
            (await client.get("/analyze/jobs/x", headers={"Authorization": f"Bearer guess-{n}"})).status_code
            for n in range(3)
        ]
        right = await client.get(
            "/analyze/jobs/nosuchjob", headers={"Authorization": "Bearer first-key-0123"}
        )
    assert guesses == [401, 401, 429]
    # The holder of a right key has a budget of its own.
    assert right.status_code == 404


async def test_a_rate_limit_without_keys_counts_per_address(nats_url: str) -> None:
    async with AsyncTestClient(
        create_app(settings_without_gateway(nats_url, codereview_rate_limit="1/minute"))
    ) as client:
        statuses = [(await client.get("/analyze/jobs/nosuchjob")).status_code for _ in range(2)]
    assert statuses == [404, 429]
