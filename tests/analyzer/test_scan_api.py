"""POST /analyze/scan and GET /analyze/scans/{id}[/findings] through the analyzer app, against a
real nats-server, with a piece checker that reports every `def` line (tests.analyzer.scan_support)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import msgspec
import nats
import pytest
from litestar.testing import AsyncTestClient

from analyzer.app import create_app
from jobs_contract import JobRecord, JobStatus
from jobs_contract.pulls import PULLS_SUBJECT, PullDescription, PullFile, PullQuery, PullSkipped
from review_contract.scan import ScanStatus
from tests.analyzer.helpers import settings_without_gateway
from tests.analyzer.scan_support import DefChecker, def_findings
from tests.analyzer.stores import job_record, job_stores, put_job, put_ready_job
from tests.analyzer.test_sarif import valid

pytestmark = pytest.mark.nats

FILES = {
    "a.py": "def one():\n    pass\n\n\ndef two():\n    pass\n",
    "pkg/b.py": "class C:\n    def method(self):\n        pass\n",
    "pkg/c.py": "X = 1\n",
    "tests/test_d.py": "def test_it():\n    assert True\n",
}


def app(nats_url: str, checker: DefChecker | None = None, **settings: Any) -> Any:
    values = {"analyzer_scan_piece_files": 1, "analyzer_scan_ack_wait_s": 2.0, **settings}
    return create_app(settings_without_gateway(nats_url, **values), scan_checker=checker)


async def until_ended(client: httpx.AsyncClient, scan_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(f"/analyze/scans/{scan_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def all_findings(client: httpx.AsyncClient, scan_id: str, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        response = await client.get(
            f"/analyze/scans/{scan_id}/findings", params={"limit": limit, "cursor": cursor}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["findings"]) <= limit
        assert set(page["rules"]) == {f["rule"] for f in page["findings"]}
        found.extend(page["findings"])
        if page["next_cursor"] is None:
            return found
        cursor = page["next_cursor"]
    raise AssertionError("the pages never ended")


async def test_a_scan_end_to_end_with_its_events(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    watcher = await nats.connect(nats_url)
    events: list[tuple[str, ScanStatus]] = []

    async def collect(message: Any) -> None:
        events.append((message.subject, msgspec.json.decode(message.data, type=ScanStatus)))

    await watcher.subscribe("codereview.scans.>", cb=collect)
    try:
        async with AsyncTestClient(app(nats_url, DefChecker())) as client:
            response = await client.post("/analyze/scan", json={"job_id": job.job_id})
            assert response.status_code == 200
            assert list(response.json()) == ["scan_id"]
            scan_id = response.json()["scan_id"]
            status = await until_ended(client, scan_id)
            expected = def_findings(FILES)
            assert status["status"] == "completed", status
            assert status["job_id"] == job.job_id
            assert status["mode"] == "checks"
            assert status["progress"] == {"pieces_done": 4, "pieces_total": 4}
            severities = [("error", "warning", "note")[line % 3] for _, line, _ in expected]
            assert status["counts"] == {
                "files": 4,
                "functions": 4,
                "findings": 4,
                "error": severities.count("error"),
                "warning": severities.count("warning"),
                "note": severities.count("note"),
                "skipped": 0,
            }
            for limit in (1, 3, 1000):
                found = await all_findings(client, scan_id, limit)
                assert [(f["path"], f["line"], f["function"]) for f in found] == expected
            await asyncio.sleep(0.2)  # the last event is on its way
            await watcher.flush()
    finally:
        await watcher.close()
    subjects = [subject for subject, _ in events]
    assert subjects[-1] == f"codereview.scans.{scan_id}.completed"
    assert f"codereview.scans.{scan_id}.progress" in subjects
    assert subjects.count(f"codereview.scans.{scan_id}.completed") == 1
    assert msgspec.to_builtins(events[-1][1]) == status


async def test_paths_narrow_the_scan(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker())) as client:
        response = await client.post("/analyze/scan", json={"job_id": job.job_id, "paths": ["pkg/**"]})
        status = await until_ended(client, response.json()["scan_id"])
        assert status["counts"]["files"] == 2
        assert status["paths"] == ["pkg/**"]
        found = await all_findings(client, status["scan_id"], 10)
        assert [f["path"] for f in found] == ["pkg/b.py"]


async def test_unknown_and_malformed_scan_ids_are_404(nats_url: str) -> None:
    async with AsyncTestClient(app(nats_url)) as client:
        for scan_id in (uuid.uuid4().hex, "not-a-scan", "A" * 32, "x" * 5000):
            for route in (f"/analyze/scans/{scan_id}", f"/analyze/scans/{scan_id}/findings"):
                response = await client.get(route)
                assert response.status_code == 404, (route, response.text)
                assert "no scan" in response.json()["detail"]


async def test_bad_requests_are_refused_with_a_reason(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        failed = job_record(JobStatus.FAILED, error="repository octo/demo not found on GitHub")
        await put_job(stores, failed)
        ready = await put_ready_job(stores, FILES)
        gone = job_record(JobStatus.READY, snapshot="octo/demo@" + "0" * 40)
        await put_job(stores, gone)
    async with AsyncTestClient(app(nats_url)) as client:
        cases = [
            ({"job_id": uuid.uuid4().hex}, 404, "no job"),
            ({"job_id": "bad id!"}, 422, "not a job id"),
            ({"job_id": failed.job_id}, 409, "not found on GitHub"),
            ({"job_id": gone.job_id}, 410, "gone from the Object Store"),
            ({"job_id": ready.job_id, "paths": ["src/[z-a].py"]}, 422, "refused: invalid range"),
            ({"job_id": ready.job_id, "paths": ["*a" * 400] * 100}, 422, "left to compile"),
            ({"job_id": ready.job_id, "paths": []}, 422, "paths"),
            ({"job_id": ready.job_id, "mode": "everything"}, 422, "mode"),
            ({"job_id": ready.job_id, "surprise": 1}, 422, "surprise"),
            ({"job_id": ready.job_id, "pull": 0}, 422, "pull"),
        ]
        for body, code, words in cases:
            response = await client.post("/analyze/scan", json=body)
            assert response.status_code == code, (body, response.text)
            assert words in response.text, (body, response.text)


async def test_a_second_scan_of_a_job_reuses_a_going_one_else_starts_anew(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        fetching = job_record(JobStatus.FETCHING)
        await put_job(stores, fetching)
        ready = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker())) as client:
        # Still fetching: the scan waits, queued, and the same request answers the same scan.
        first = (await client.post("/analyze/scan", json={"job_id": fetching.job_id})).json()["scan_id"]
        again = (await client.post("/analyze/scan", json={"job_id": fetching.job_id})).json()["scan_id"]
        other = (
            await client.post("/analyze/scan", json={"job_id": fetching.job_id, "paths": ["a.py"]})
        ).json()
        assert again == first
        assert other["scan_id"] != first
        assert (await client.get(f"/analyze/scans/{first}")).json()["status"] == "queued"
        response = await client.get(f"/analyze/scans/{first}/findings")
        assert response.status_code == 409
        assert "queued" in response.json()["detail"]
        # Once ended, the same request is a new scan.
        done = (await client.post("/analyze/scan", json={"job_id": ready.job_id})).json()["scan_id"]
        await until_ended(client, done)
        anew = (await client.post("/analyze/scan", json={"job_id": ready.job_id})).json()["scan_id"]
        assert anew != done
        assert (await until_ended(client, anew))["counts"]["findings"] == 4


async def test_a_failed_fetch_fails_the_scan_with_its_reason(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = job_record(JobStatus.QUEUED)
        await put_job(stores, job)
        async with AsyncTestClient(app(nats_url, DefChecker())) as client:
            scan_id = (await client.post("/analyze/scan", json={"job_id": job.job_id})).json()["scan_id"]
            await asyncio.sleep(0.3)
            assert (await client.get(f"/analyze/scans/{scan_id}")).json()["status"] == "queued"
            failed = msgspec.structs.replace(job, status=JobStatus.FAILED, error="the tarball is over 1 GB")
            await put_job(stores, failed)
            status = await until_ended(client, scan_id)
            assert status["status"] == "failed"
            assert status["error"] == f"the job {job.job_id} failed: the tarball is over 1 GB"
            response = await client.get(f"/analyze/scans/{scan_id}/findings")
            assert response.status_code == 409
            assert "the tarball is over 1 GB" in response.json()["detail"]


async def test_a_scan_over_the_file_limit_fails_saying_so(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker(), analyzer_scan_max_files=3)) as client:
        scan_id = (await client.post("/analyze/scan", json={"job_id": job.job_id})).json()["scan_id"]
        status = await until_ended(client, scan_id)
        assert status["status"] == "failed"
        assert "covers 4 files, over the 3" in status["error"]
        assert "ANALYZER_SCAN_MAX_FILES" in status["error"]
        narrowed = await client.post("/analyze/scan", json={"job_id": job.job_id, "paths": ["pkg/*", "a.py"]})
        assert (await until_ended(client, narrowed.json()["scan_id"]))["status"] == "completed"


async def test_a_piece_that_keeps_failing_fails_the_scan(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {**FILES, "bad.py": "# scan-test: raise\n"})
    async with AsyncTestClient(app(nats_url, DefChecker(), analyzer_scan_max_attempts=2)) as client:
        scan_id = (await client.post("/analyze/scan", json={"job_id": job.job_id})).json()["scan_id"]
        status = await until_ended(client, scan_id)
        assert status["status"] == "failed"
        assert status["error"] == (
            "piece 1 (bad.py) failed 2 times, the last: ValueError('the checker refuses bad.py')"
        )


async def test_skipped_files_and_an_empty_scan(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {**FILES, "huge.py": "# scan-test: skip\n"})
    async with AsyncTestClient(app(nats_url, DefChecker())) as client:
        scan_id = (await client.post("/analyze/scan", json={"job_id": job.job_id})).json()["scan_id"]
        status = await until_ended(client, scan_id)
        assert status["counts"]["skipped"] == 1
        assert status["skipped"] == [{"path": "huge.py", "reason": "over the limits: test"}]
        empty = await client.post("/analyze/scan", json={"job_id": job.job_id, "paths": ["docs/*.py"]})
        status = await until_ended(client, empty.json()["scan_id"])
        assert status["status"] == "completed"
        assert status["progress"] == {"pieces_done": 0, "pieces_total": 0}
        page = (await client.get(f"/analyze/scans/{status['scan_id']}/findings")).json()
        assert page == {"findings": [], "rules": {}, "next_cursor": None}


async def test_bad_pages_are_400(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker())) as client:
        scan_id = (await client.post("/analyze/scan", json={"job_id": job.job_id})).json()["scan_id"]
        await until_ended(client, scan_id)
        for params in (
            {"limit": 0},
            {"limit": 1001},
            {"cursor": "nope"},
            {"cursor": "99:0"},
            {"cursor": "0:99"},
            {"cursor": "1" * 30 + ":0"},
        ):
            response = await client.get(f"/analyze/scans/{scan_id}/findings", params=params)
            assert response.status_code == 400, (params, response.text)


async def test_a_full_scan_queue_refuses_a_new_scan_with_retry_after(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    # No workers: the first start stays in the queue, which holds one message.
    async with AsyncTestClient(
        app(nats_url, None, analyzer_scan_workers=0, analyzer_scan_queue_max_msgs=1)
    ) as client:
        first = await client.post("/analyze/scan", json={"job_id": job.job_id})
        assert first.status_code == 200
        refused = await client.post("/analyze/scan", json={"job_id": job.job_id, "paths": ["a.py"]})
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "30"
        assert "ANALYZER_SCAN_QUEUE_MAX_MSGS" in refused.json()["detail"]
        assert (await client.get(f"/analyze/scans/{first.json()['scan_id']}")).json()["status"] == "queued"


class FakeFetcherPulls:
    """Stands in for the fetchers' answers on PULLS_SUBJECT (the fetcher's side is tested in
    tests/fetcher/test_pulls.py), recording each question, and makes the head commit's job ready
    once the scan starts it, as a fetcher would."""

    def __init__(self, stores: Any, answer: PullDescription, head_files: dict[str, str]) -> None:
        self.stores = stores
        self.answer = answer
        self.head_files = head_files
        self.questions: list[PullQuery] = []

    async def reply(self, message: Any) -> None:
        self.questions.append(msgspec.json.decode(message.data, type=PullQuery))
        await message.respond(msgspec.json.encode(self.answer))

    async def make_head_ready(self, known: set[str]) -> str:
        """Wait for a job the test did not make (the head commit's), store its files, mark it ready."""
        while True:
            for key in await self.stores.kv.keys():
                if key not in known:
                    record = msgspec.json.decode((await self.stores.kv.get(key)).value, type=JobRecord)
                    ready = await put_ready_job(self.stores, self.head_files, sha=record.ref)
                    await put_job(self.stores, msgspec.structs.replace(ready, job_id=record.job_id))
                    return record.ref or ""
            await asyncio.sleep(0.05)


async def test_a_pull_request_scan_reviews_the_head_commits_changed_functions(nats_url: str) -> None:
    head_sha = "ab" * 20
    head = {**FILES, "a.py": FILES["a.py"] + "\n\ndef three():\n    pass\n"}
    answer = PullDescription(
        head_sha=head_sha,
        files=[PullFile(path="a.py", lines=[(9, 10)]), PullFile(path="pkg/b.py", lines=[(3, 3)])],
        skipped=[
            PullSkipped(path="README.md", reason="not Python"),
            PullSkipped(path="old.py", reason="deleted"),
        ],
    )
    async with job_stores(nats_url) as stores:
        base = await put_ready_job(stores, FILES)
        fetcher = FakeFetcherPulls(stores, answer, head)
        checker = DefChecker()
        listener = await nats.connect(nats_url)
        await listener.subscribe(PULLS_SUBJECT, cb=fetcher.reply)
        try:
            known = set(await stores.kv.keys())
            async with AsyncTestClient(app(nats_url, checker)) as client:
                response = await client.post("/analyze/scan", json={"job_id": base.job_id, "pull": 7})
                assert response.status_code == 200, response.text
                assert await asyncio.wait_for(fetcher.make_head_ready(known), 30) == head_sha
                status = await until_ended(client, response.json()["scan_id"])
                assert status["status"] == "completed", status
                assert status["pull"] == 7
                assert status["job_id"] == base.job_id
                assert {(s["path"], s["reason"]) for s in status["skipped"]} >= {
                    ("README.md", "not Python"),
                    ("old.py", "deleted"),
                }
                found = await all_findings(client, status["scan_id"], 100)
        finally:
            await listener.close()
    assert fetcher.questions == [PullQuery(owner="octo", repo="demo", number=7)]
    # Only the files the pull request changed, from the head commit (`three` is not in the base),
    # each piece with its changed lines (the checker keeps the functions on them: test_scan_pieces).
    assert {(f["path"], f["function"]) for f in found} == {
        ("a.py", "one"),
        ("a.py", "two"),
        ("a.py", "three"),
        ("pkg/b.py", "method"),
    }
    assert checker.lines == {"a.py": [(9, 10)], "pkg/b.py": [(3, 3)]}


async def test_a_pull_request_the_fetcher_cannot_describe_fails_the_scan_saying_why(nats_url: str) -> None:
    answer = PullDescription(error="pull request 7 not found in octo/demo")
    async with job_stores(nats_url) as stores:
        base = await put_ready_job(stores, FILES)
        fetcher = FakeFetcherPulls(stores, answer, {})
        listener = await nats.connect(nats_url)
        await listener.subscribe(PULLS_SUBJECT, cb=fetcher.reply)
        try:
            async with AsyncTestClient(app(nats_url, DefChecker())) as client:
                response = await client.post("/analyze/scan", json={"job_id": base.job_id, "pull": 7})
                status = await until_ended(client, response.json()["scan_id"])
        finally:
            await listener.close()
    assert status["status"] == "failed"
    assert status["error"] == "pull request 7 not found in octo/demo"
    assert len(fetcher.questions) == 1  # said once by the fetcher: not asked again


async def test_a_pull_request_scan_with_no_fetcher_listening_fails_naming_it(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        base = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker(), analyzer_scan_max_attempts=1)) as client:
        response = await client.post("/analyze/scan", json={"job_id": base.job_id, "pull": 7})
        status = await until_ended(client, response.json()["scan_id"])
    assert status["status"] == "failed"
    assert "no fetcher answers pull request questions" in status["error"]


async def test_a_completed_scan_answers_valid_sarif_and_says_when_it_is_cut(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker(), analyzer_scan_sarif_max_results=3)) as client:
        response = await client.post("/analyze/scan", json={"job_id": job.job_id})
        scan_id = response.json()["scan_id"]
        await until_ended(client, scan_id)
        sarif = await client.get(f"/analyze/scans/{scan_id}/sarif")
        unknown = await client.get(f"/analyze/scans/{uuid.uuid4().hex}/sarif")
    assert sarif.status_code == 200, sarif.text
    log = valid(sarif.json())
    run = log["runs"][0]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]] == [
        "a.py",
        "a.py",
        "pkg/b.py",
    ]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert "only the first 3 findings" in notes[-1]["message"]["text"]
    assert unknown.status_code == 404


async def test_sarif_of_a_scan_still_running_is_409(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with AsyncTestClient(app(nats_url, DefChecker(delay_s=5.0))) as client:
        response = await client.post("/analyze/scan", json={"job_id": job.job_id})
        sarif = await client.get(f"/analyze/scans/{response.json()['scan_id']}/sarif")
    assert sarif.status_code == 409
    assert "listed once it has completed" in sarif.json()["detail"]
