"""The fetcher end to end: a real nats-server, the fake GitHub, the analyzer's side of the contract."""

from __future__ import annotations

import pytest

from fetcher.settings import Settings
from jobs_contract import JobStatus, snapshot_key
from tests.fetcher.helpers import Analyzer
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.nats

FILES = {
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
        "pkg/core.py": FILES["pkg/core.py"].encode(),
        "pkg/sub/deep.py": FILES["pkg/sub/deep.py"].encode(),
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
