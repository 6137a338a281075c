"""POST /analyze/start and GET /analyze/jobs/{id} against a real nats-server."""

from __future__ import annotations

import msgspec
import nats
import pytest
from litestar.testing import AsyncTestClient

from analyzer.app import create_app
from analyzer.repo_url import ACCEPTED_FORMS
from analyzer.settings import Settings
from jobs_contract import FETCH_STREAM, FETCH_SUBJECT, FetchRequest, JobRecord, JobStatus
from tests.analyzer.helpers import settings_without_gateway
from tests.analyzer.stores import job_record, job_stores, put_job

pytestmark = pytest.mark.nats


async def fetch_requests(nats_url: str) -> list[tuple[dict[str, str], FetchRequest]]:
    """Every fetch request waiting in the work queue, with its headers (read without consuming)."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        info = await js.stream_info(FETCH_STREAM)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            message = await js.get_msg(FETCH_STREAM, seq)
            assert message.subject == FETCH_SUBJECT
            found.append(
                (dict(message.headers or {}), msgspec.json.decode(message.data or b"", type=FetchRequest))
            )
        return found
    finally:
        await client.close()


async def test_start_answers_a_job_id_and_queues_one_fetch_request(nats_url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        response = await client.post(
            "/analyze/start", json={"repo_url": "https://github.com/Octo/Hello.git/tree/feature/x"}
        )
        assert response.status_code == 200
        body = response.json()
        assert list(body) == ["job_id"]
        job_id = body["job_id"]

        job = await client.get(f"/analyze/jobs/{job_id}")
        assert job.status_code == 200
        record = job.json()
        assert record["job_id"] == job_id
        assert record["status"] == "queued"
        assert (record["owner"], record["repo"], record["ref"]) == ("Octo", "Hello", "feature/x")
        assert record["commit_sha"] is None
        assert record["created_at"] == record["updated_at"]

    [(headers, request)] = await fetch_requests(nats_url)
    assert headers["Nats-Msg-Id"] == job_id
    assert (request.job_id, request.owner, request.repo, request.ref) == (
        job_id,
        "Octo",
        "Hello",
        "feature/x",
    )


async def test_each_start_is_a_new_job(nats_url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        ids = [
            (await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/hello"})).json()[
                "job_id"
            ]
            for _ in range(3)
        ]
    assert len(set(ids)) == 3
    queued = await fetch_requests(nats_url)
    assert [headers["Nats-Msg-Id"] for headers, _ in queued] == ids
    assert all(request.ref is None for _, request in queued)


async def test_a_full_fetch_queue_answers_503_with_retry_after_and_drops_no_queued_job(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue #20: the queue had no bound. Both services read FETCH_QUEUE_MAX_MSGS from the
    # environment (jobs_contract.StorageSettings); a tiny one here.
    monkeypatch.setenv("FETCH_QUEUE_MAX_MSGS", "2")
    repo = {"repo_url": "https://github.com/octo/hello"}
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        queued = [(await client.post("/analyze/start", json=repo)).json()["job_id"] for _ in range(2)]
        full = await client.post("/analyze/start", json=repo)

        assert full.status_code == 503
        assert full.headers["Retry-After"] == "30"
        assert full.json() == {
            "status_code": 503,
            "detail": "the fetch queue is full: FETCH_QUEUE_MAX_MSGS requests wait for a fetcher "
            "(NATS: maximum messages exceeded); try again later",
        }
        # Nothing queued was dropped to make room, and the refused job is not among them.
        assert [headers["Nats-Msg-Id"] for headers, _ in await fetch_requests(nats_url)] == queued

        # A fetcher takes a request (and finishes it): the next start is queued again.
        async with job_stores(nats_url) as stores:
            refused = [key for key in await stores.kv.keys() if key not in queued]
            [record] = [await stores.kv.get(key) for key in refused]
            failed = msgspec.json.decode(record.value or b"", type=JobRecord)
            assert failed.status is JobStatus.FAILED
            assert failed.error is not None
            assert failed.error.startswith("the fetch queue is full: FETCH_QUEUE_MAX_MSGS")
        client_nc = await nats.connect(nats_url)
        try:
            consumer = await client_nc.jetstream().pull_subscribe(
                FETCH_SUBJECT, "test-fetcher", stream=FETCH_STREAM
            )
            [message] = await consumer.fetch(1, timeout=5)
            await message.ack_sync()
        finally:
            await client_nc.close()
        again = await client.post("/analyze/start", json=repo)
        assert again.status_code == 200
    assert [headers["Nats-Msg-Id"] for headers, _ in await fetch_requests(nats_url)] == [
        queued[1],
        again.json()["job_id"],
    ]


@pytest.mark.parametrize(
    "url", ["https://gitlab.com/octo/hello", "https://github.com@evil.example/o/r", "https://github.com/octo"]
)
async def test_a_bad_repo_url_is_422_and_queues_nothing(nats_url: str, url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        response = await client.post("/analyze/start", json={"repo_url": url})
    assert response.status_code == 422
    body = response.json()
    assert body["status_code"] == 422
    assert ACCEPTED_FORMS in body["detail"]
    assert await fetch_requests(nats_url) == []
    async with job_stores(nats_url) as stores:
        with pytest.raises(nats.js.errors.NoKeysError):
            await stores.kv.keys()


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{}", 422, "repo_url"),
        (b'{"repo_url": 5}', 422, "repo_url"),
        (b'{"repo_url": null}', 422, "repo_url"),
        (b'{"url": "https://github.com/o/r"}', 422, "repo_url"),
        (b"[]", 422, ""),
        (b"not json", 400, "JSON is malformed"),
        # Invalid UTF-8 inside a JSON string: msgspec raises UnicodeDecodeError, not DecodeError.
        (b'{"repo_url": "https://github.com/o/r\xff"}', 400, "not valid UTF-8"),
        (b'{"repo_url": "https://github.com/o/\xc3"}', 400, "not valid UTF-8"),
        (b"", 422, ""),
    ],
)
async def test_a_malformed_start_body_is_refused(
    nats_url: str, body: bytes, status: int, detail: str
) -> None:
    """JSON with missing or mistyped fields is 422 (as FastAPI answers); a body that is not JSON is 400."""
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        response = await client.post(
            "/analyze/start", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    assert response.json()["status_code"] == status
    assert detail in str(response.json())
    assert await fetch_requests(nats_url) == []


async def test_get_job_shows_what_the_fetcher_wrote(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        record = job_record(JobStatus.FAILED, error="GitHub answered 404: octo/gone is missing or private")
        await put_job(stores, record)
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        response = await client.get(f"/analyze/jobs/{record.job_id}")
    assert response.status_code == 200
    assert msgspec.convert(response.json(), JobRecord) == record


async def test_unknown_and_malformed_job_ids(nats_url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        unknown = await client.get("/analyze/jobs/0123456789abcdef")
        assert unknown.status_code == 404
        assert unknown.json() == {
            "status_code": 404,
            "detail": "no job '0123456789abcdef'",
            "extra": {"job_id": "0123456789abcdef"},
        }
        malformed = await client.get("/analyze/jobs/a.b*")
        assert malformed.status_code == 422
        assert "is not a job id" in malformed.json()["detail"]


async def test_health_and_json_errors_for_unknown_routes(nats_url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "nats": "connected"}
        missing = await client.get("/nope")
        assert missing.status_code == 404
        assert missing.json()["status_code"] == 404
        wrong_method = await client.get("/analyze/start")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["status_code"] == 405


async def test_request_id_is_echoed_or_made(nats_url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        given = await client.get("/health", headers={"x-request-id": "abc-123"})
        made = await client.get("/health")
        # The gateway would replace these, and the review could no longer be followed by one id.
        odd = [await client.get("/health", headers={"x-request-id": v}) for v in ("a b", "x;y", "z" * 65)]
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 16
    assert [len(r.headers["x-request-id"]) for r in odd] == [16, 16, 16]


def test_settings_refuse_an_unknown_log_level() -> None:
    assert Settings(log_level=" debug ").log_level == "DEBUG"
    with pytest.raises(ValueError, match="LOG_LEVEL must be DEBUG, INFO"):
        Settings(log_level="loud")


async def test_the_openapi_document_lists_the_routes(nats_url: str) -> None:
    async with AsyncTestClient(create_app(settings_without_gateway(nats_url))) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert set(response.json()["paths"]) == {
        "/analyze/start",
        "/analyze/jobs/{job_id}",
        "/analyze/jobs/{job_id}/functions",
        "/analyze/function",
        "/analyze/findings",
        "/analyze/scan",
        "/analyze/scans/{scan_id}",
        "/analyze/scans/{scan_id}/findings",
        "/health",
    }
