"""GET /analyze/jobs/{job_id}/functions against a real nats-server: names that work, paged and filtered.

Snapshots and job records are put straight into NATS, as in test_function_api.py; every name
listed is checked against the resolver itself (a real POST /analyze/function reaches that file
and line), so the listing cannot drift from what the lookup accepts.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from analyzer.listing import MAX_LIMIT, Listing, Query
from analyzer.locate import SnapshotIndex
from jobs_contract import JobStatus
from tests.analyzer.stores import job_record, job_stores, put_job, put_ready_job
from tests.analyzer.test_function_api import analyzer, settings
from tests.support.fake_gateway import FakeGateway

pytestmark = pytest.mark.nats

FILES = {
    "src/demo/__init__.py": "def version():\n    return '1'\n",
    "src/demo/mod.py": (
        "class Parser:\n"
        "    @property\n"
        "    def size(self):\n"
        "        return 1\n\n"
        "    @size.setter\n"
        "    def size(self, value):\n"
        "        pass\n\n"
        "def parse(text):\n"
        "    def inner():\n"
        "        return text\n"
        "    return inner()\n"
    ),
    "src/demo/util/mod.py": "def parse(text):\n    return text\n",
    "src/demo/stubs.pyi": "def typed() -> int: ...\n",
    "tests/test_mod.py": "def test_parse():\n    assert True\n",
    "broken.py": "print 'python 2'\n",
}


async def functions(client: httpx.AsyncClient, job_id: str, **params: Any) -> httpx.Response:
    return await client.get(f"/analyze/jobs/{job_id}/functions", params=params)


async def listing(client: httpx.AsyncClient, job_id: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every entry, following the cursors (a page may end early when its parse budget is spent),
    and how many pages it took; each page holds at most `limit` entries."""
    found: list[dict[str, Any]] = []
    pages = 0
    cursor = ""
    while True:
        response = await functions(client, job_id, **params, cursor=cursor)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["functions"]) <= params.get("limit", 100)
        found += page["functions"]
        pages += 1
        if page["next_cursor"] is None:
            return found, pages
        cursor = page["next_cursor"]


async def test_every_name_listed_is_one_the_lookup_takes_to_that_file_and_line(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        first = (await functions(client, job.job_id)).json()
        assert first["snapshot"].startswith("octo/demo@")
        assert first["job_id"] == job.job_id
        entries, _ = await listing(client, job.job_id)
        listed = [(f["name"], f["full_name"], f["path"], f["line"]) for f in entries]
        assert listed == [
            ("demo.version", "demo.version", "src/demo/__init__.py", 1),
            # `mod.parse` means src/demo/mod.py (the shorter path wins): the other needs `util.`.
            ("mod.Parser", "demo.mod.Parser", "src/demo/mod.py", 1),
            ("mod.Parser.size", "demo.mod.Parser.size", "src/demo/mod.py", 2),
            ("mod.parse", "demo.mod.parse", "src/demo/mod.py", 10),
            ("mod.parse.inner", "demo.mod.parse.inner", "src/demo/mod.py", 11),
            ("util.mod.parse", "demo.util.mod.parse", "src/demo/util/mod.py", 1),
            ("test_mod.test_parse", "tests.test_mod.test_parse", "tests/test_mod.py", 1),
        ]
        # Each short name reaches its own definition through the real lookup.
        for name, _, path, line in listed:
            found = SnapshotIndex({p: v.encode() for p, v in FILES.items()}, "octo/demo").find(name)
            assert (found.path, found.start_line) == (path, line)
            body = {"job_id": job.job_id, "function_name": name}
            reviewed = await client.post("/analyze/function", json=body)
            assert reviewed.status_code == 200, (name, reviewed.text)


async def test_pages_follow_each_other_in_a_stable_order_and_filters_narrow(
    nats_url: str, gateway: FakeGateway
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        everything = [f["full_name"] for f in (await listing(client, job.job_id))[0]]
        paged, pages = await listing(client, job.job_id, limit=3)
        assert [f["full_name"] for f in paged] == everything
        assert pages >= 3

        prefixed, _ = await listing(client, job.job_id, prefix="demo.mod.")
        assert [f["full_name"] for f in prefixed] == [
            "demo.mod.Parser",
            "demo.mod.Parser.size",
            "demo.mod.parse",
            "demo.mod.parse.inner",
        ]
        contains, _ = await listing(client, job.job_id, contains="PARSE")
        assert [f["full_name"] for f in contains] == [
            "demo.mod.Parser",
            "demo.mod.Parser.size",
            "demo.mod.parse",
            "demo.mod.parse.inner",
            "demo.util.mod.parse",
            "tests.test_mod.test_parse",
        ]
        assert (await listing(client, job.job_id, contains="zzz"))[0] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, f"limit must be 1 to {MAX_LIMIT}, got 0"),
        ({"limit": MAX_LIMIT + 1}, f"limit must be 1 to {MAX_LIMIT}"),
        ({"cursor": "abc"}, "cursor 'abc' is not one a page gave"),
        ({"cursor": "1:2:3"}, "is not one a page gave"),
        ({"prefix": "x" * 2000}, "prefix must be at most"),
        ({"contains": "a\x00b"}, "contains must be at most"),
    ],
)
async def test_bad_parameters_are_a_422_that_names_them(
    nats_url: str, gateway: FakeGateway, params: dict[str, Any], message: str
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with analyzer(settings(nats_url, gateway)) as client:
        response = await functions(client, job.job_id, **params)
    assert response.status_code == 422
    assert message in response.json()["detail"]


async def test_unknown_fetching_and_failed_jobs_answer_as_analyze_function_does(
    nats_url: str, gateway: FakeGateway
) -> None:
    fetching = job_record(JobStatus.FETCHING)
    failed = job_record(JobStatus.FAILED, error="octo/demo: it does not exist, or it is private")
    async with job_stores(nats_url) as stores:
        await put_job(stores, fetching)
        await put_job(stores, failed)
    async with analyzer(settings(nats_url, gateway, analyzer_wait_timeout_s=30)) as client:
        unknown = await functions(client, "0" * 32)
        still = await functions(client, fetching.job_id)
        gone = await functions(client, failed.job_id)
        bad = await functions(client, "not.a.job")
    assert unknown.status_code == 404
    # At once, not after ANALYZER_WAIT_TIMEOUT_S: a listing does not wait for the fetch.
    assert still.status_code == 409
    assert "still fetching" in still.json()["detail"]
    assert gone.status_code == 409
    assert "it does not exist, or it is private" in gone.json()["detail"]
    assert bad.status_code == 422


def test_a_page_out_of_time_answers_what_it_has_and_a_cursor_to_go_on() -> None:
    files = {f"pkg/m{i:02}.py": f"def f{i}():\n    pass\n".encode() for i in range(20)}
    listing = Listing(SnapshotIndex(files, "octo/many"))
    query = Query.checked("", "nothing-matches", 10, "")
    found, cursor = listing.page(query, deadline=0.0)
    # One file per page when the budget is spent at once, and the walk still ends.
    assert (found, cursor) == ([], "1:0")
    steps = 1
    while cursor is not None:
        found, cursor = listing.page(Query.checked("", "nothing-matches", 10, cursor), deadline=0.0)
        assert found == []
        steps += 1
    assert steps == 20
