"""POST /analyze/function against a real nats-server and a fake gateway on loopback.

Snapshots and job records are put straight into NATS (as the fetcher would): the fetcher is not
the point here; tests/analyzer/test_end_to_end.py runs the real one.

The app runs under uvicorn in the test's event loop, reached over real HTTP: Litestar's
AsyncTestClient runs the app in a thread of its own and blocks the test's loop meanwhile, so a
fake gateway (or a job update) in the test's loop could not answer while a request waits on it.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.js.kv import KeyValue

from analyzer.analysis import Analysis
from analyzer.app import create_app
from analyzer.errors import JobNotReady
from analyzer.jobs import JobStore
from analyzer.locate import MAX_NAME_CHARS, NameNotFound
from analyzer.locate.text import LocalSearch
from analyzer.resources import JOBS
from analyzer.settings import Settings
from jobs_contract import REPOS_BUCKET, JobStatus
from tests.analyzer.helpers import analyze, index
from tests.analyzer.stores import job_record, job_stores, put_job, put_ready_job
from tests.support.fake_gateway import DEFAULT_SUGGESTIONS, FakeGateway
from tests.support.servers import serving

pytestmark = pytest.mark.nats

FILES = {
    "calc.py": (
        "import functools\n\n\n"
        "def add(a, b):\n"
        "    # adds\n"
        "    return a + b\n\n\n"
        "class Box:\n"
        "    @functools.cache\n"
        "    def size(self):\n"
        "        return 1\n"
    ),
    "pkg/__init__.py": "",
    "pkg/tools.py": "async def fetch(url):\n    return url\n",
    "broken.py": "print 'python 2'\n\ndef old():\n    pass\n",
}


def settings(nats_url: str, gateway: FakeGateway, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "gateway_url": gateway.base_url,
        "gateway_retries": 0,
        "gateway_timeout_s": 10.0,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def analyzer(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client


async def test_the_function_source_goes_to_the_gateway_and_its_suggestions_come_back(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, job.job_id, "calc.add")
        assert response.status_code == 200
        assert response.json() == {"suggestions": DEFAULT_SUGGESTIONS}

        method = await analyze(client, job.job_id, "calc.Box.size")
        assert method.status_code == 200
        coroutine = await analyze(client, job.job_id, "pkg.tools.fetch")
        assert coroutine.status_code == 200

    sent = [(r.model, r.messages) for r in gateway.requests]
    assert sent == [
        ("code-review", [{"role": "user", "content": "def add(a, b):\n    # adds\n    return a + b"}]),
        (
            "code-review",
            # A module of its own: the method's lines without the class's indentation.
            [{"role": "user", "content": "@functools.cache\ndef size(self):\n    return 1"}],
        ),
        ("code-review", [{"role": "user", "content": "async def fetch(url):\n    return url"}]),
    ]
    assert all(r.path == "/v1/chat/completions" for r in gateway.requests)


async def test_the_request_id_travels_to_the_gateway(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await client.post(
            "/analyze/function",
            json={"job_id": job.job_id, "function_name": "calc.add"},
            headers={"x-request-id": "trace-42"},
        )
        made = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == 200
    assert gateway.requests[0].headers["x-request-id"] == "trace-42"
    assert gateway.requests[0].headers["authorization"] == "Bearer codereview-analyzer"
    # Without one, the id the analyzer made (and answered) is the one the gateway sees.
    assert gateway.requests[1].headers["x-request-id"] == made.headers["x-request-id"]


async def test_a_job_still_fetching_is_waited_for(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        ready = await put_ready_job(stores, FILES)
        fetching = msgspec.structs.replace(ready, status=JobStatus.FETCHING, snapshot=None, progress=0.4)
        await put_job(stores, fetching)
        async with analyzer(settings(nats_url, gateway)) as client:
            pending = asyncio.create_task(analyze(client, ready.job_id, "calc.add"))
            await asyncio.sleep(0.5)
            assert not pending.done()
            await put_job(stores, msgspec.structs.replace(fetching, status=JobStatus.FETCHING, progress=0.9))
            await put_job(stores, ready)
            response = await pending
    assert response.status_code == 200
    assert response.json() == {"suggestions": DEFAULT_SUGGESTIONS}


async def test_a_job_that_fails_while_waited_for_is_409_with_its_reason(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        queued = job_record(JobStatus.QUEUED)
        await put_job(stores, queued)
        async with analyzer(settings(nats_url, gateway)) as client:
            pending = asyncio.create_task(analyze(client, queued.job_id, "calc.add"))
            await asyncio.sleep(0.3)
            await put_job(
                stores,
                msgspec.structs.replace(queued, status=JobStatus.FAILED, error="download limit exceeded"),
            )
            response = await pending
    assert response.status_code == 409
    assert response.json()["detail"] == f"job {queued.job_id} failed: download limit exceeded"
    assert gateway.requests == []


async def test_the_wait_ends_with_409_and_the_status(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        fetching = msgspec.structs.replace(job_record(JobStatus.FETCHING), progress=0.25)
        await put_job(stores, fetching)
    async with analyzer(settings(nats_url, gateway, analyzer_wait_timeout_s=0.3)) as client:
        response = await analyze(client, fetching.job_id, "calc.add")
    assert response.status_code == 409
    assert response.json() == {
        "status_code": 409,
        "detail": f"job {fetching.job_id} is still fetching after waiting 0.3 s; try again later",
        "extra": {"job_id": fetching.job_id, "status": "fetching", "progress": 0.25},
    }


async def test_a_failed_job_is_409_with_its_reason(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        failed = job_record(
            JobStatus.FAILED, error="GitHub answered 404: octo/demo does not exist or is private"
        )
        await put_job(stores, failed)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, failed.job_id, "calc.add")
    assert response.status_code == 409
    body = response.json()
    assert (
        body["detail"]
        == f"job {failed.job_id} failed: GitHub answered 404: octo/demo does not exist or is private"
    )
    assert body["extra"]["status"] == "failed"


async def test_unknown_job_unknown_function_and_bad_names(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        unknown_job = await analyze(client, "feedc0de" * 4, "calc.add")
        assert unknown_job.status_code == 404
        assert unknown_job.json()["detail"] == f"no job {'feedc0de' * 4!r}"

        missing = await analyze(client, job.job_id, "calc.ad")
        assert missing.status_code == 404
        body = missing.json()
        assert body["detail"].startswith("no function 'calc.ad' in octo/demo@")
        assert "calc.add" in body["extra"]["did_you_mean"]
        assert len(body["extra"]["did_you_mean"]) <= 5

        for name in ["", "   ", "calc..add", "calc.add(", "x" * (MAX_NAME_CHARS + 1)]:
            bad = await analyze(client, job.job_id, name)
            assert bad.status_code == 422, name
            assert bad.json()["status_code"] == 422

        for job_id in ["", "../etc", "a.b", "a b"]:
            bad_job = await analyze(client, job_id, "calc.add")
            assert bad_job.status_code == 422, job_id
            assert "is not a job id" in bad_job.json()["detail"]

        missing_field = await client.post("/analyze/function", json={"job_id": job.job_id})
        assert missing_field.status_code == 422
        assert "function_name" in str(missing_field.json())
    assert gateway.requests == []


async def test_a_body_that_is_not_utf8_is_400_and_logs_no_traceback(
    nats_url: str, gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    bodies = [
        b'{"job_id": "%s", "function_name": "calc.add\xff"}' % job.job_id.encode(),
        b'{"job_id": "\xe9t\xe9", "function_name": "calc.add"}',
    ]
    async with analyzer(settings(nats_url, gateway)) as client:
        answers = [
            await client.post("/analyze/function", content=body, headers={"content-type": "application/json"})
            for body in bodies
        ]
    for response in answers:
        assert response.status_code == 400
        assert response.json()["status_code"] == 400
        assert "the body is not valid UTF-8" in response.json()["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert gateway.requests == []


async def test_an_empty_name_is_422_before_any_wait(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        queued = job_record(JobStatus.QUEUED)
        await put_job(stores, queued)
    # A wait this long would time the test out: the 422 must come first.
    async with analyzer(settings(nats_url, gateway, analyzer_wait_timeout_s=3600)) as client:
        response = await analyze(client, queued.job_id, " ")
    assert response.status_code == 422
    assert "function_name is empty" in response.json()["detail"]


async def test_a_function_in_a_file_that_does_not_parse(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, job.job_id, "broken.old")
        # The rest of the snapshot still works.
        fine = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == 422
    body = response.json()
    assert "broken.py does not parse" in body["detail"]
    assert body["extra"]["path"] == "broken.py"
    assert fine.status_code == 200


async def test_a_file_whose_codec_is_not_a_text_encoding_is_its_own_422(
    nats_url: str, gateway: FakeGateway
) -> None:
    files = {
        **FILES,
        "rot.py": "# coding: rot13\ndef qrs():\n    pass\n",
        # A non-ASCII name: the name index decodes every file, rot.py included.
        "intl.py": "def naïve():\n    return 1\n",
    }
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, files)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, job.job_id, "rot.qrs")
        by_suffix = await analyze(client, job.job_id, "qrs")
        others = [await analyze(client, job.job_id, name) for name in ["calc.add", "naïve", "size", "fetch"]]
        missing = await analyze(client, job.job_id, "naive_x")
    assert response.status_code == 422
    assert "rot.py does not parse" in response.json()["detail"]
    assert "rot13" in response.json()["detail"]
    assert by_suffix.status_code == 422
    assert [r.status_code for r in others] == [200, 200, 200, 200]
    assert missing.status_code == 404


async def test_a_name_in_a_module_that_does_not_decode_is_that_files_422(
    nats_url: str, gateway: FakeGateway
) -> None:
    # All of it rot13, cookie aside: its bytes show no `def hello`, whatever it defines.
    rot = "# coding: rot13\n" + codecs.encode("def hello():\n    return 1\n", "rot13")
    files = {
        **FILES,
        "rot.py": rot,
        # What a weaker tier would find instead: a file of another module that defines `hello`.
        "vendor/rot.py": "def hello():\n    return 2\n",
        # And an import that leads there.
        "pkg/__init__.py": "from rot import hello\n",
    }
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, files)
    async with analyzer(settings(nats_url, gateway)) as client:
        answers = [
            await analyze(client, job.job_id, name) for name in ("rot.hello", "rot.missing", "pkg.hello")
        ]
        by_suffix = await analyze(client, job.job_id, "hello")
        fine = await analyze(client, job.job_id, "calc.add")
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["extra"]["path"] == "rot.py"
        assert "rot.py does not parse" in answer.json()["detail"]
        assert "'rot13' cannot decode it" in answer.json()["detail"]
    assert "(which pkg/__init__.py imports from there)" in answers[2].json()["detail"]
    # A name that names no module is not that file's: the one file that shows it wins.
    assert by_suffix.status_code == 200
    assert fine.status_code == 200
    assert [r.messages[0]["content"] for r in gateway.requests] == [
        "def hello():\n    return 2",
        "def add(a, b):\n    # adds\n    return a + b",
    ]


async def test_the_searches_of_the_whole_text_run_in_a_worker_not_the_server(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the server's own process the text of a snapshot is never searched: every search (which
    # files may define a name, a 404's close names) happens in the search worker.
    with pytest.raises(NameNotFound) as in_process:
        index(FILES).find("calc.ad")
    expected = in_process.value.suggestions
    assert "calc.add" in expected
    searched: list[str] = []

    def recorded(name: str) -> Any:
        def search(self: LocalSearch, *args: Any) -> Any:
            searched.append(name)
            raise AssertionError(f"LocalSearch.{name} ran in the server")

        return search

    for name in ("holders", "suggest", "names"):
        monkeypatch.setattr(LocalSearch, name, recorded(name))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        missing = await analyze(client, job.job_id, "calc.ad")
        by_suffix = [await analyze(client, job.job_id, name) for name in ("add", "Box.size", "tools.fetch")]
        unparsable = await analyze(client, job.job_id, "old")
        nothing_close = await analyze(client, job.job_id, "zzz.qqq")
    assert searched == []
    assert missing.status_code == 404
    # The same close names as the search in this process gives.
    assert missing.json()["extra"]["did_you_mean"] == expected
    assert (
        missing.json()["detail"]
        == f"no function 'calc.ad' in {job.snapshot}; close names: {', '.join(expected)}"
    )
    assert [r.status_code for r in by_suffix] == [200, 200, 200]
    assert unparsable.status_code == 422
    assert "broken.py does not parse" in unparsable.json()["detail"]
    assert nothing_close.status_code == 404
    assert nothing_close.json()["extra"]["did_you_mean"] == []


@pytest.mark.slow
async def test_a_search_of_the_text_over_its_budget_is_422_or_a_404_without_close_names(
    nats_url: str, gateway: FakeGateway
) -> None:
    # A non-ASCII name is looked up in the index of every name: for 1.5M defs, seconds of CPU in
    # the search worker, over a budget of one (the suggestions of a 404 need that index too).
    many = "".join(f"def f{i}(x):\n    return x\n" for i in range(1_500_000))
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {**FILES, "defs.py": many})
    budget = settings(
        nats_url, gateway, analyzer_parse_cpu_s=1, analyzer_warm_index=False, analyzer_preload=False
    )
    async with analyzer(budget) as client:
        over = await analyze(client, job.job_id, "naïve")
        missing = await analyze(client, job.job_id, "defs.f12345678")
        fine = [await analyze(client, job.job_id, name) for name in ("calc.add", "add", "Box.size")]
        health = await client.get("/health")
    assert over.status_code == 422
    assert over.json() == {
        "status_code": 422,
        "detail": (
            f"function_name 'naïve' cannot be looked for in {job.snapshot}: looking for 'naïve' in the "
            f"text of {job.snapshot} takes more than the budget of 1 s of CPU (ANALYZER_PARSE_CPU_S) "
            "or 2000000000 bytes of memory (ANALYZER_PARSE_MEMORY_BYTES)"
        ),
        "extra": {"function_name": "naïve"},
    }
    assert missing.status_code == 404
    assert missing.json()["extra"]["did_you_mean"] == []
    assert [r.status_code for r in fine] == [200, 200, 200]
    assert health.status_code == 200


@pytest.mark.slow
async def test_a_file_over_a_parse_budget_is_its_own_422_and_blocks_no_other_request(
    nats_url: str, gateway: FakeGateway
) -> None:
    # One line of `X = [1, 1, ...]`: its tree is hundreds of times its size, and slow to build.
    heavy_files = {
        **FILES,
        "big.py": "def big():\n    pass\n\n\nX = [" + "1, " * 2_000_000 + "]\n",
        # Several CPU seconds to parse, whatever the load: over a budget of one, however fast.
        "slow.py": "def slow():\n    pass\n\n\nX = [" + "1, " * 1_300_000 + "]\n",
    }
    async with job_stores(nats_url) as stores:
        heavy = await put_ready_job(stores, heavy_files)
        other = await put_ready_job(stores, FILES)
    budgets = settings(
        nats_url,
        gateway,
        analyzer_parse_max_bytes=5_000_000,
        analyzer_parse_cpu_s=1,
        analyzer_parse_memory_bytes=1_500_000_000,
        analyzer_warm_index=False,
        analyzer_preload=False,
    )
    async with analyzer(budgets) as client:
        assert (await analyze(client, other.job_id, "calc.add")).status_code == 200
        slow = asyncio.create_task(analyze(client, heavy.job_id, "slow.slow"))
        await asyncio.sleep(0.2)  # the lookup is parsing in its worker
        # Meanwhile the server answers everything else: its event loop is not parsing.
        health = await client.get("/health")
        another = await analyze(client, other.job_id, "calc.Box.size")
        assert not slow.done()
        response = await slow
        too_big = await analyze(client, heavy.job_id, "big.big")
        fine = await analyze(client, heavy.job_id, "calc.add")
    assert health.status_code == 200
    assert another.status_code == 200
    assert response.status_code == 422
    assert "slow.py does not parse" in response.json()["detail"]
    assert "more than the budget" in response.json()["detail"]
    assert too_big.status_code == 422
    assert "over the parse budget of 5000000 bytes (ANALYZER_PARSE_MAX_BYTES)" in too_big.json()["detail"]
    assert fine.status_code == 200


async def test_a_long_function_is_cut_and_the_review_says_so(nats_url: str, gateway: FakeGateway) -> None:
    body_lines = [f"    total += {i}  # step {i}\n" for i in range(400)]
    source = "def long():\n    total = 0\n" + "".join(body_lines) + "    return total\n"
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"big.py": source})
    async with analyzer(settings(nats_url, gateway, analyzer_source_max_chars=1000)) as client:
        response = await analyze(client, job.job_id, "big.long")
    assert response.status_code == 200
    suggestions = response.json()["suggestions"]
    sent = gateway.requests[0].messages[0]["content"]
    assert len(sent) <= 1000
    assert source.startswith(sent)
    covered = len(sent.splitlines())
    assert suggestions == [
        f"This review covers only the first {covered} of 403 lines of big.long: the function is longer than "
        "the review budget of 1000 characters, so the rest was not reviewed.",
        *DEFAULT_SUGGESTIONS,
    ]


async def test_a_ready_job_whose_snapshot_is_gone_is_410(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
        assert job.snapshot is not None
        await stores.repos.delete(job.snapshot)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == 410
    body = response.json()
    assert body["status_code"] == 410
    assert "gone from the Object Store (they are kept for a limited time); start a new job" in body["detail"]
    assert body["extra"] == {"snapshot": job.snapshot}
    assert gateway.requests == []


async def test_a_snapshot_whose_chunks_expired_before_its_metadata_is_410(
    nats_url: str, gateway: FakeGateway
) -> None:
    # The bucket's max age removes the chunks (written first) a moment before the metadata: the
    # object is still listed, but its bytes are gone.
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
        assert job.snapshot is not None
        info = await stores.repos.get_info(job.snapshot)
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().purge_stream(
                f"OBJ_{REPOS_BUCKET}", subject=f"$O.{REPOS_BUCKET}.C.{info.nuid}"
            )
        finally:
            await client.close()
    async with analyzer(settings(nats_url, gateway, nats_timeout_s=30)) as client_:
        response = await analyze(client_, job.job_id, "calc.add")
    # At once, not after a read timed out: 410, not 503.
    assert response.status_code == 410
    assert "gone from the Object Store" in response.json()["detail"]


async def test_an_unreadable_snapshot_is_409(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
        assert job.snapshot is not None
        await stores.repos.put(job.snapshot, b"\xc1 not msgpack")
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == 409
    assert "are unreadable" in response.json()["detail"]


# -- the gateway misbehaving: 502/504 naming the gateway, never a 500 ----------------------------


@pytest.mark.parametrize(
    ("script", "status", "detail"),
    [
        (
            {"status": 500, "raw_body": b'{"error": {"message": "boom"}}'},
            502,
            "the gateway answered HTTP 500: boom",
        ),
        # A body that is not the gateway's error is not repeated: it may hold anything.
        ({"status": 503, "raw_body": b"upstream down"}, 502, "the gateway answered HTTP 503"),
        (
            {"status": 504, "raw_body": b'{"error": {"message": "model timeout"}}'},
            504,
            "the gateway answered HTTP 504",
        ),
        (
            {"status": 401, "raw_body": b'{"error": {"message": "bad key"}}'},
            502,
            "the gateway answered HTTP 401",
        ),
        ({"raw_body": b"<html>not json</html>"}, 502, "the gateway"),
        ({"raw_body": b'{"choices": []}'}, 502, "the gateway's answer has no choices"),
        ({"raw_body": b'{"choices": [{"message": {"role": "assistant"}}]}'}, 502, "no message content"),
        ({"content": "Sure! Here are my thoughts"}, 502, "the gateway's answer is not"),
        ({"content": '{"suggestions": "one"}'}, 502, "the gateway's answer is not"),
        ({"content": '{"suggestions": [1, 2]}'}, 502, "the gateway's answer is not"),
        ({"content": '{"advice": []}'}, 502, "the gateway's answer is not"),
    ],
)
async def test_gateway_failures_are_502_or_504(
    nats_url: str, gateway: FakeGateway, script: dict[str, Any], status: int, detail: str
) -> None:
    await check_gateway_failure(nats_url, gateway, script, status, detail)


@pytest.mark.alone  # the gateway's whole timeout is 0.5 s, connecting included
async def test_a_gateway_that_does_not_answer_in_time_is_504(nats_url: str, gateway: FakeGateway) -> None:
    await check_gateway_failure(
        nats_url, gateway, {"delay": 2.0}, 504, "the gateway did not answer in time", gateway_timeout_s=0.5
    )


async def check_gateway_failure(
    nats_url: str, gateway: FakeGateway, script: dict[str, Any], status: int, detail: str, **overrides: Any
) -> None:
    """A gateway that behaves as `script` says (FakeGateway's fields) makes a review `status`,
    with `detail`, naming the gateway; the analyzer's settings as `overrides` say."""
    for field, value in script.items():
        setattr(gateway, field, value)
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway, **overrides)) as client:
        response = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == status
    body = response.json()
    assert body["status_code"] == status
    assert detail in body["detail"]
    assert body["extra"]["upstream"] == "gateway"


ECHOED_KEY = "sk-Zq8vXw3LmN5pRt7Y"


@pytest.mark.parametrize(
    ("raw_body", "detail"),
    [
        (
            b'{"error": {"message": "Incorrect API key provided: ' + ECHOED_KEY.encode() + b'"}}',
            "the gateway answered HTTP 502: Incorrect API key provided: ***",
        ),
        (b"<html>" + ECHOED_KEY.encode() + b"</html>", "the gateway answered HTTP 502"),
        (
            b'{"error": {"message": "bad\\n\\u001b[31mERROR ' + ECHOED_KEY.encode() + b'"}}',
            "the gateway answered HTTP 502: bad\\u000a\\u001b[31mERROR ***",
        ),
    ],
)
async def test_a_key_in_the_gateways_error_reaches_neither_the_caller_nor_the_log(
    nats_url: str,
    gateway: FakeGateway,
    caplog: pytest.LogCaptureFixture,
    raw_body: bytes,
    detail: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway.status, gateway.raw_body = 502, raw_body
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == 502
    assert response.json()["detail"] == detail
    lines = [response.text, *(record.getMessage() for record in caplog.records)]
    for piece in (ECHOED_KEY[i : i + 6] for i in range(len(ECHOED_KEY) - 5)):
        assert not any(piece in line for line in lines), piece


async def test_a_gateway_that_is_down_is_502(nats_url: str) -> None:
    down = FakeGateway(base_url="http://127.0.0.1:9/v1")
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, down)) as client:
        response = await analyze(client, job.job_id, "calc.add")
    assert response.status_code == 502
    assert response.json()["detail"].startswith("the gateway could not be reached")


async def test_retries_reach_a_gateway_that_recovers(nats_url: str, gateway: FakeGateway) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    gateway.status, gateway.raw_body = 503, b"busy"
    async with analyzer(settings(nats_url, gateway, gateway_retries=2)) as client:
        failing = asyncio.create_task(analyze(client, job.job_id, "calc.add"))
        while not gateway.requests:
            await asyncio.sleep(0.01)
        gateway.status, gateway.raw_body = 200, None
        response = await failing
    assert response.status_code == 200
    assert len(gateway.requests) == 2


async def test_ready_records_are_reused_for_a_while_then_asked_again(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
        async with analyzer(settings(nats_url, gateway, analyzer_ready_cache_s=3600)) as cached:
            assert (await analyze(cached, job.job_id, "calc.add")).status_code == 200
            await stores.kv.delete(job.job_id)
            # Within ANALYZER_READY_CACHE_S the record is not asked for again...
            assert (await analyze(cached, job.job_id, "calc.add")).status_code == 200
        # ...and without the cache NATS is asked every time.
        async with analyzer(settings(nats_url, gateway, analyzer_ready_cache_s=0)) as uncached:
            assert (await analyze(uncached, job.job_id, "calc.add")).status_code == 404


async def test_a_bug_is_a_json_500_that_leaks_nothing(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> list[str]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Analysis, "review", broken)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await analyze(client, "0123abcd", "calc.add")
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "internal error (logged by the analyzer)"}


async def test_waiters_on_one_job_share_one_watch(
    nats_url: str, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    watches: list[str] = []
    real_watch = KeyValue.watch

    async def counting_watch(self: KeyValue, keys: str, **kwargs: Any) -> Any:
        watches.append(keys)
        return await real_watch(self, keys, **kwargs)

    monkeypatch.setattr(KeyValue, "watch", counting_watch)
    app = create_app(settings(nats_url, gateway))
    async with job_stores(nats_url) as stores:
        ready = await put_ready_job(stores, FILES)
        await put_job(stores, msgspec.structs.replace(ready, status=JobStatus.FETCHING, snapshot=None))
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
            jobs: JobStore = app.state[JOBS]
            pending = [
                asyncio.create_task(
                    client.post("/analyze/function", json={"job_id": ready.job_id, "function_name": name})
                )
                for name in ["calc.add", "calc.Box.size", "pkg.tools.fetch"] * 4
            ]
            while not (ready.job_id in jobs._watches and jobs._watches[ready.job_id].waiters == len(pending)):
                await asyncio.sleep(0.02)
            await put_job(stores, ready)
            responses = await asyncio.gather(*pending)
            assert jobs._watches == {}
    assert [r.status_code for r in responses] == [200] * len(pending)
    assert watches == [ready.job_id]
    assert len(gateway.requests) == len(pending)


async def test_a_waiter_that_gives_up_leaves_the_others_waiting(nats_url: str, gateway: FakeGateway) -> None:
    app = create_app(settings(nats_url, gateway))
    async with job_stores(nats_url) as stores:
        ready = await put_ready_job(stores, FILES)
        await put_job(stores, msgspec.structs.replace(ready, status=JobStatus.QUEUED, snapshot=None))
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
            jobs: JobStore = app.state[JOBS]
            patient = asyncio.create_task(analyze(client, ready.job_id, "calc.add"))
            while ready.job_id not in jobs._watches:
                await asyncio.sleep(0.02)
            # A short wait of its own: the same store, called directly with 0.1 s.
            with pytest.raises(JobNotReady):
                await jobs.wait_ready(ready.job_id, 0.1)
            assert jobs._watches[ready.job_id].waiters == 1
            await put_job(stores, ready)
            assert (await patient).status_code == 200
