"""servicekit.request_id: the caller's sane id or a new one, echoed, bound for the logs, then unbound."""

from __future__ import annotations

import logging

import pytest
import structlog
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from servicekit.logs import bind_job_id
from servicekit.request_id import current_request_id, request_id_middleware


@get("/seen", sync_to_thread=False)
def seen() -> dict[str, object]:
    context = structlog.contextvars.get_contextvars()
    bind_job_id("job-of-this-request")
    logging.getLogger("tests.seen").info("handled")
    return {"request_id": current_request_id(), "job_id": context.get("job_id")}


def app() -> Litestar:
    return Litestar([seen], middleware=[request_id_middleware], logging_config=None)


async def test_a_sane_caller_id_is_kept_echoed_and_bound() -> None:
    async with AsyncTestClient(app()) as client:
        response = await client.get("/seen", headers={"X-Request-ID": "review-7:a.b_c"})
    assert response.headers["x-request-id"] == "review-7:a.b_c"
    assert response.json() == {"request_id": "review-7:a.b_c", "job_id": None}


@pytest.mark.parametrize("given", [None, "", "a b", "x;y", "z" * 65, "line\nbreak", "é"])
async def test_anything_else_gets_a_new_id(given: str | None) -> None:
    headers = {} if given is None else {b"X-Request-ID": given.encode("latin-1")}
    async with AsyncTestClient(app()) as client:
        response = await client.get("/seen", headers=headers)
    made = response.headers["x-request-id"]
    assert len(made) == 16
    assert made != given
    assert response.json()["request_id"] == made


async def test_nothing_bound_in_a_request_outlives_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with AsyncTestClient(app()) as client:
        # An in-process client shares this test's context across requests: the job bound by the
        # first must not reach the second, nor this test after them.
        first = await client.get("/seen", headers={"X-Request-ID": "one"})
        second = await client.get("/seen", headers={"X-Request-ID": "two"})
    assert first.json()["job_id"] is None
    assert second.json()["job_id"] is None
    assert current_request_id() is None
    assert "job_id" not in structlog.contextvars.get_contextvars()
