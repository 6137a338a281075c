"""The fetcher end to end: a real nats-server, the fake GitHub, the analyzer's side of the contract."""

from __future__ import annotations

import msgspec
import pytest

from fetcher.settings import Settings
from jobs_contract import FetchRequest, JobRecord, JobStatus, snapshot_key
from tests.fetcher.helpers import Analyzer, fetcher_settings, gzip_bytes, member, running_fetcher, tar_bytes
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.nats

FILES: dict[str, bytes | str] = {
    "README.md": "# demo\n",
    "pkg/__init__.py": "",
    "pkg/core.py": "def add(a, b):\n    return a + b\n",
    "pkg/sub/deep.py": "class A:\n    def m(self):\n        return 1\n",
    "setup.cfg": "[metadata]\n",
    "data.bin": b"\x00\x01\x02",
}


async def test_default_branch_is_fetched_and_only_python_files_are_stored(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    sha = fake_github.add_repo("octo", "demo", FILES, default_branch="trunk")

    job_id = await jobs.submit("octo", "demo")
    record = await jobs.wait(job_id)

    assert record.status is JobStatus.READY, record.error
    assert record.ref == "trunk"
    assert record.commit_sha == sha
    assert record.snapshot == snapshot_key("octo", "demo", sha)
    assert record.files == 3
    assert record.progress == 1.0
    assert record.error is None
    snapshot = await jobs.snapshot(record.snapshot)
    assert snapshot.commit_sha == sha
    assert snapshot.files == {
        "pkg/__init__.py": b"",
        "pkg/core.py": b"def add(a, b):\n    return a + b\n",
        "pkg/sub/deep.py": b"class A:\n    def m(self):\n        return 1\n",
    }
    assert record.bytes == sum(len(v) for v in snapshot.files.values())
    assert len(jobs.events_for(job_id, "completed")) == 1
    assert jobs.events_for(job_id, "failed") == []
    # The default branch came from GET /repos, the archive through the tarball redirect.
    assert [r.path for r in fake_github.requests] == [
        "/repos/octo/demo",
        "/repos/octo/demo/tarball/trunk",
        "/codeload/octo/demo/legacy.tar.gz/trunk",
    ]


async def test_lint_configuration_files_are_stored_apart_and_not_counted_as_files(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    configs = {
        "pyproject.toml": b"[tool.ruff]\nline-length = 100\n",
        "pkg/ruff.toml": b"[lint]\nselect = ['E']\n",
        "pkg/sub/.ruff.toml": b"extend = '../ruff.toml'\n",
    }
    sha = fake_github.add_repo("octo", "demo", {**FILES, **configs})

    record = await jobs.wait(await jobs.submit("octo", "demo"))

    assert record.status is JobStatus.READY, record.error
    snapshot = await jobs.snapshot(snapshot_key("octo", "demo", sha))
    assert snapshot.configs == configs
    assert sorted(snapshot.files) == ["pkg/__init__.py", "pkg/core.py", "pkg/sub/deep.py"]
    assert (record.files, record.bytes) == (3, sum(len(v) for v in snapshot.files.values()))


async def test_explicit_ref_is_fetched_and_the_job_records_it(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    tag_sha = fake_github.add_repo("octo", "demo", {"old.py": "x = 1\n"}, ref="v1.0")

    job_id = await jobs.submit("octo", "demo", "v1.0")
    record = await jobs.wait(job_id)

    assert record.status is JobStatus.READY, record.error
    assert (record.ref, record.commit_sha, record.files) == ("v1.0", tag_sha, 1)
    assert (await jobs.snapshot(record.snapshot or "")).files == {"old.py": b"x = 1\n"}
    # No GET /repos: the ref was given.
    assert fake_github.requests[0].path == "/repos/octo/demo/tarball/v1.0"


async def test_a_branch_with_slashes_is_sent_as_a_path(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    sha = fake_github.add_repo("octo", "demo", {"new.py": "y = 2\n"}, ref="release/2.0")

    record = await jobs.wait(await jobs.submit("octo", "demo", "release/2.0"))

    assert record.status is JobStatus.READY, record.error
    assert (record.ref, record.commit_sha) == ("release/2.0", sha)
    # As GitHub documents refs in paths (heads/feature-a): the slash is not encoded.
    assert fake_github.requests[0].path == "/repos/octo/demo/tarball/release/2.0"


async def test_without_a_pax_comment_the_sha_comes_from_the_commits_api(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    archive = gzip_bytes(tar_bytes([(member("octo-plain-1234567/a.py"), b"a = 1\n")]))
    sha = fake_github.add_archive("octo", "plain", archive)

    record = await jobs.wait(await jobs.submit("octo", "plain"))

    assert record.status is JobStatus.READY, record.error
    assert record.commit_sha == sha
    assert fake_github.requests_to(r"/commits/main$")


async def test_progress_events_and_record_while_fetching(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    fake_github.add_repo("octo", "big", {f"m{i}.py": "x = 1\n" * 2000 for i in range(40)})
    fake_github.chunk_size = 16 * 1024
    fake_github.chunk_delay = 0.01

    job_id = await jobs.submit("octo", "big")
    record = await jobs.wait(job_id)

    assert record.status is JobStatus.READY, record.error
    progress = jobs.events_for(job_id, "progress")
    assert progress, "no progress events"
    assert all(e.status is JobStatus.FETCHING for e in progress)
    shares = [e.progress for e in progress]
    assert shares == sorted(shares)
    assert 0 < max(shares) < 1
    [completed] = jobs.events_for(job_id, "completed")
    assert (completed.status, completed.files, completed.commit_sha) == (
        JobStatus.READY,
        40,
        record.commit_sha,
    )


async def test_one_commit_is_stored_once_and_a_request_delivered_twice_completes_once(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    sha = fake_github.add_repo("octo", "demo", FILES)
    first = await jobs.submit("octo", "demo")
    record = await jobs.wait(first)
    info = await jobs.stores.repos.get_info(record.snapshot or "")

    # Another job for the same commit (by its sha): no second download, no second object.
    second = await jobs.wait(await jobs.submit("octo", "demo", sha))
    assert second.status is JobStatus.READY, second.error
    assert (second.snapshot, second.files, second.bytes) == (record.snapshot, record.files, record.bytes)
    assert (await jobs.stores.repos.get_info(record.snapshot or "")).nuid == info.nuid
    assert len(fake_github.requests_to("/codeload/")) == 1

    # The same request again (a retry outside the duplicate window): one completion event only.
    body = msgspec.json.encode(FetchRequest(job_id=first, owner="octo", repo="demo", requested_at=1.0))
    await jobs.publish_raw(body, msg_id=f"{first}-again")
    marker = await jobs.submit("octo", "demo", sha)  # queued behind it: when done, so is the retry
    await jobs.wait(marker)
    assert len(jobs.events_for(first, "completed")) == 1
    assert (await jobs.record(first)).updated_at == record.updated_at
    assert [o.name for o in await jobs.stores.repos.list()] == [record.snapshot]


async def test_a_malformed_request_fails_its_job_and_the_fetcher_keeps_serving(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    job_id = "malformed-1"
    await jobs.submit("octo", "demo", job_id=job_id)  # a proper record ...
    await jobs.wait(job_id)
    bad_id = "malformed-2"
    now = 1.0
    await jobs.stores.kv.put(
        bad_id,
        msgspec.json.encode(
            JobRecord(
                job_id=bad_id, status=JobStatus.QUEUED, owner="o", repo="r", created_at=now, updated_at=now
            )
        ),
    )
    await jobs.publish_raw(b'{"job_id": "malformed-2", "owner": "o"}', msg_id="m2")
    await jobs.publish_raw(b"\xff not json", msg_id="m3")
    await jobs.publish_raw(b'{"job_id": "x", "owner": "../etc", "repo": "r", "requested_at": 1}', msg_id="m4")

    record = await jobs.wait(bad_id)
    assert record.status is JobStatus.FAILED
    assert "invalid fetch request" in (record.error or "")
    assert "repo" in (record.error or "")
    assert len(jobs.events_for(bad_id, "failed")) == 1
    # Still serving.
    assert (await jobs.wait(await jobs.submit("octo", "demo"))).status is JobStatus.READY


async def test_a_missing_job_record_is_created_from_the_request(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    body = msgspec.json.encode(FetchRequest(job_id="no-record", owner="octo", repo="demo", requested_at=5.0))
    await jobs.publish_raw(body, msg_id="no-record")

    record = await jobs.wait("no-record")

    assert (record.status, record.created_at, record.owner) == (JobStatus.READY, 5.0, "octo")


async def test_two_fetchers_on_one_nats_share_the_queue_without_double_work(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    repos = [f"repo{i}" for i in range(6)]
    for name in repos:
        fake_github.add_repo("octo", name, {f"{name}.py": f"name = {name!r}\n" * 3000})
    fake_github.chunk_size = 8 * 1024
    fake_github.chunk_delay = 0.005
    settings = fetcher_settings(nats_url, fake_github.api_url, fetcher_concurrency=1)

    async with running_fetcher(settings), running_fetcher(settings):
        job_ids = [await jobs.submit("octo", name) for name in repos]
        records = [await jobs.wait(job_id) for job_id in job_ids]

    assert [r.status for r in records] == [JobStatus.READY] * len(repos)
    assert [r.files for r in records] == [1] * len(repos)
    assert len(fake_github.requests_to("/codeload/")) == len(repos)
    assert all(len(jobs.events_for(job_id, "completed")) == 1 for job_id in job_ids)
