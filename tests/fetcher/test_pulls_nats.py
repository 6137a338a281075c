"""The fetcher answers pull request questions on PULLS_SUBJECT: a real nats-server, the fake GitHub."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import nats
import pytest

from fetcher.settings import Settings
from jobs_contract.pulls import PULLS_SUBJECT, PullDescription, PullFile, PullQuery, PullSkipped
from tests.support.fake_github import FakeGitHub, Fault, pull_file

pytestmark = pytest.mark.nats


async def ask(nats_url: str, body: bytes) -> PullDescription:
    nc = await nats.connect(nats_url)
    try:
        reply = await nc.request(PULLS_SUBJECT, body, timeout=20)
    finally:
        await nc.drain()
    return msgspec.json.decode(reply.data, type=PullDescription)


async def test_a_pull_request_is_described_over_nats(
    nats_url: str, fake_github: FakeGitHub, fetcher: Settings
) -> None:
    repo = f"r{uuid.uuid4().hex[:12]}"
    sha = fake_github.add_pull(
        "octo",
        repo,
        3,
        [
            pull_file("app/main.py", "@@ -0,0 +1,2 @@\n+import os\n+print(os)", status="added"),
            pull_file("a.md"),
        ],
    )

    description = await ask(nats_url, msgspec.json.encode(PullQuery(owner="octo", repo=repo, number=3)))

    assert description == PullDescription(
        head_sha=sha,
        files=[PullFile(path="app/main.py", lines=[(1, 2)])],
        skipped=[PullSkipped(path="a.md", reason="not Python")],
    )
    malformed = await ask(nats_url, b'{"owner": "octo"}')
    assert malformed.error is not None
    assert malformed.error.startswith("not a pull request query: Object missing required field")


async def test_a_slow_pull_request_does_not_hold_up_the_next_question(
    nats_url: str, fake_github: FakeGitHub, fetcher: Settings
) -> None:
    slow, quick = f"r{uuid.uuid4().hex[:12]}", f"r{uuid.uuid4().hex[:12]}"
    fake_github.add_pull("octo", slow, 1, [pull_file("a.py")])
    fake_github.add_pull("octo", quick, 1, [pull_file("a.py")])
    fake_github.add_fault(Fault(pattern=f"^/repos/octo/{slow}/pulls/1$", status=200, delay=3.0, times=1))

    slow_answer = asyncio.create_task(
        ask(nats_url, msgspec.json.encode(PullQuery(owner="octo", repo=slow, number=1)))
    )
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    quick_answer = await ask(nats_url, msgspec.json.encode(PullQuery(owner="octo", repo=quick, number=1)))

    assert asyncio.get_running_loop().time() - started < 2.0
    assert quick_answer.files == [PullFile(path="a.py", lines=[(2, 2)])]
    assert (await slow_answer).error is not None  # the fault answered 200 with GitHub's error body
