"""Describing a pull request (fetcher.pulls) against the fake GitHub: what is described, what is
skipped and why, every bound, GitHub's failures in our words, and the exact requests sent."""

from __future__ import annotations

import json
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from fetcher.github import GitHubClient, GitHubConfig
from fetcher.pulls import TRUNCATED_PATH, PullLimits, answer, describe_pull
from jobs_contract.pulls import PullDescription, PullFile, PullQuery, PullSkipped
from tests.support.fake_github import FakeGitHub, Fault, pull_file

TOKEN = "ghp_pullsTokenNotToBeSeen1234"
UNUSABLE = (
    "GitHub gave no usable answer for pull request 7 of octo/{repo} (the fetcher's log says what it was)"
)
CHANGE = "@@ -10,3 +10,4 @@ def f():\n     a = 1\n-    b = 2\n+    b = 3\n+    c = 4\n     return a"
NEW_FILE = "@@ -0,0 +1,2 @@\n+def g():\n+    pass"


@pytest.fixture
def repo() -> str:
    """A repository name of this test's own: the fake GitHub and its faults live for the session."""
    return f"r{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def github(fake_github: FakeGitHub) -> AsyncIterator[GitHubClient]:
    config = GitHubConfig(
        api_url=fake_github.api_url,
        token=TOKEN,
        timeout_s=5.0,
        retries=2,
        backoff_s=0.0,
        rate_limit_max_wait_s=1.0,
    )
    async with GitHubClient(config) as client:
        yield client


def query(repo: str, number: int = 7) -> PullQuery:
    return PullQuery(owner="octo", repo=repo, number=number)


async def test_a_pull_request_is_its_head_and_the_added_lines_of_its_python_files(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    sha = fake_github.add_pull(
        "octo",
        repo,
        7,
        [
            pull_file("pkg/core.py", CHANGE),
            pull_file("pkg/new.py", NEW_FILE, status="added"),
            pull_file("README.md", "@@ -1 +1 @@\n-a\n+b"),
            pull_file("pkg/old.py", "@@ -1,2 +0,0 @@\n-a\n-b", status="removed"),
            pull_file("pkg/moved.py", None, status="renamed", previous_filename="pkg/was.py"),
            pull_file("pkg/moved_and_edited.py", CHANGE, status="renamed", previous_filename="pkg/x.py"),
            pull_file("pkg/huge.py", None),
            pull_file("pkg/shrunk.py", "@@ -1,3 +1,1 @@\n a\n-b\n-c"),
            pull_file("pkg/bogus.py", "@@ -1 +1 @@\n+a\n+b"),
            pull_file("pkg/mode_only.py", None, status="changed"),
        ],
    )

    description = await describe_pull(github, query(repo), PullLimits())

    assert description == PullDescription(
        head_sha=sha,
        files=[
            PullFile(path="pkg/core.py", lines=[(11, 12)]),
            PullFile(path="pkg/new.py", lines=[(1, 2)]),
            PullFile(path="pkg/moved_and_edited.py", lines=[(11, 12)]),
        ],
        skipped=[
            PullSkipped(path="README.md", reason="not Python"),
            PullSkipped(path="pkg/old.py", reason="deleted"),
            PullSkipped(path="pkg/moved.py", reason="renamed without changes"),
            PullSkipped(
                path="pkg/huge.py",
                reason="no patch: GitHub sends none for a binary file or a diff too large to show",
            ),
            PullSkipped(path="pkg/shrunk.py", reason="no lines added or changed (only removed)"),
            PullSkipped(
                path="pkg/bogus.py",
                reason="unreadable patch: line 3: more added lines than its hunk header counts",
            ),
            PullSkipped(
                path="pkg/mode_only.py",
                reason="no patch: GitHub sends none for a binary file or a diff too large to show",
            ),
        ],
    )
    # The JSON the analyzer reads: lines as [start, end] pairs, no error key.
    assert json.loads(msgspec.json.encode(description))["files"][0] == {
        "path": "pkg/core.py",
        "lines": [[11, 12]],
    }


async def test_the_requests_sent_are_the_pull_then_its_files_page_by_page_with_the_token(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file(f"m{i}.py", CHANGE) for i in range(250)])

    description = await describe_pull(github, query(repo), PullLimits())

    assert [f.path for f in description.files] == [f"m{i}.py" for i in range(250)]
    assert not description.truncated
    sent = fake_github.requests_to(f"/repos/octo/{repo}/")
    assert [r.path for r in sent] == [
        f"/repos/octo/{repo}/pulls/7",
        f"/repos/octo/{repo}/pulls/7/files?per_page=100&page=1",
        f"/repos/octo/{repo}/pulls/7/files?per_page=100&page=2",
        f"/repos/octo/{repo}/pulls/7/files?per_page=100&page=3",
    ]
    for request in sent:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        # Unencoded, so the byte bound counts what is held (a gzip body inflates unseen).
        assert request.headers["accept-encoding"] == "identity"


async def test_no_page_is_asked_past_the_count_github_gives(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file(f"m{i}.py", CHANGE) for i in range(200)])
    fake_github.add_pull("octo", repo, 8, [])

    assert len((await describe_pull(github, query(repo), PullLimits())).files) == 200
    assert await describe_pull(github, query(repo, 8), PullLimits()) == PullDescription(
        head_sha=fake_github.repos[("octo", repo)].pulls[8].head_sha
    )

    assert [r.path.rsplit("/", 2)[-2:] for r in fake_github.requests_to(f"/repos/octo/{repo}/")] == [
        ["pulls", "7"],
        ["7", "files?per_page=100&page=1"],
        ["7", "files?per_page=100&page=2"],
        ["pulls", "8"],
    ]


async def test_ten_thousand_changed_files_stop_at_githubs_three_thousand_quickly_in_bounded_memory(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file(f"pkg/m{i}.py", CHANGE) for i in range(10_000)])

    tracemalloc.start()
    started = time.perf_counter()
    try:
        description = await describe_pull(github, query(repo), PullLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started

    assert len(description.files) == 3_000
    assert description.truncated
    assert description.skipped == [
        PullSkipped(
            path=TRUNCATED_PATH,
            reason="only the first 3000 of the 10000 changed files are described: GitHub lists at most 3,000",
        )
    ]
    assert len(fake_github.requests_to(f"/repos/octo/{repo}/pulls/7/files")) == 30
    # Traced (about 3x slower) and the fake GitHub's own JSON in the same process: one page at a
    # time and the reply are what is held.
    assert peak < 48 * 1024 * 1024, peak
    assert elapsed < 60, elapsed
    assert len(msgspec.json.encode(description)) < 1024 * 1024


async def test_fetcher_pull_max_files_truncates_earlier_and_names_itself(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    files = [pull_file(f"m{i}.py", CHANGE) for i in range(10_000)]
    files[3] = pull_file("notes.txt", "@@ -1 +1 @@\n-a\n+b")
    fake_github.add_pull("octo", repo, 7, files)

    description = await describe_pull(github, query(repo), PullLimits(max_files=250))

    assert len(description.files) == 249
    assert description.truncated
    assert description.skipped == [
        PullSkipped(path="notes.txt", reason="not Python"),
        PullSkipped(
            path=TRUNCATED_PATH,
            reason="only the first 250 of the 10000 changed files are described: FETCHER_PULL_MAX_FILES=250",
        ),
    ]
    assert len(fake_github.requests_to(f"/repos/octo/{repo}/pulls/7/files")) == 3


async def test_a_list_shorter_than_the_count_says_the_rest_is_not_described(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file("a.py", CHANGE)], changed_files=3)

    description = await describe_pull(github, query(repo), PullLimits())

    assert description.truncated
    assert description.skipped[-1] == PullSkipped(
        path=TRUNCATED_PATH,
        reason="GitHub listed 1 of the 3 changed files (it lists at most 3,000); the rest are not described",
    )


async def test_a_patch_over_its_bound_or_in_too_many_places_is_skipped_over_the_limits(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    scattered = "@@ -1,10001 +1,20002 @@\n" + "+a\n x\n" * 10_001
    fake_github.add_pull(
        "octo",
        repo,
        7,
        [pull_file("big.py", "@@ -0,0 +1,40 @@\n" + "+x = 1\n" * 40), pull_file("scattered.py", scattered)],
    )

    description = await describe_pull(github, query(repo), PullLimits(max_patch_bytes=200))
    assert description.skipped[0] == PullSkipped(
        path="big.py", reason="over the limits: its patch is 297 bytes, over FETCHER_PULL_MAX_PATCH_BYTES=200"
    )
    description = await describe_pull(github, query(repo), PullLimits())
    assert description.files == [PullFile(path="big.py", lines=[(1, 40)])]
    assert description.skipped == [
        PullSkipped(
            path="scattered.py", reason="over the limits: lines added in more than 10000 separate places"
        )
    ]


async def test_a_page_over_its_byte_bound_ends_the_description_there(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    long_change = "@@ -0,0 +1,100 @@\n" + "\n".join(["+" + "x" * 60] * 100)
    files = [pull_file(f"s{i}.py", NEW_FILE) for i in range(100)] + [
        pull_file(f"l{i}.py", long_change) for i in range(100)
    ]
    fake_github.add_pull("octo", repo, 7, files)

    description = await describe_pull(github, query(repo), PullLimits(max_page_bytes=200_000))

    assert [f.path for f in description.files] == [f"s{i}.py" for i in range(100)]
    assert description.truncated
    assert description.skipped == [
        PullSkipped(
            path=TRUNCATED_PATH,
            reason="files from number 101 on are not described: a page of GitHub's list of them is over "
            "FETCHER_PULL_MAX_PAGE_BYTES=200000",
        )
    ]


async def test_the_reply_never_outgrows_the_nats_payload(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file(f"pkg/module_{i}.py", CHANGE) for i in range(300)])

    description = await describe_pull(github, query(repo), PullLimits(max_reply_bytes=8_192))

    assert description.truncated
    assert 0 < len(description.files) < 300
    number = len(description.files) + 1
    assert description.skipped[-1] == PullSkipped(
        path=TRUNCATED_PATH,
        reason=f"files from number {number} on are not described: the answer would be over NATS's max "
        "payload of 8192 bytes",
    )
    assert len(msgspec.json.encode(description)) <= 8_192


# -- GitHub's failures, in our words -------------------------------------------------------------


async def test_an_unknown_pull_request_or_repository_is_not_found(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [])
    for asked in (query(repo, 9), query(f"{repo}-nowhere", 7)):
        description = await describe_pull(github, asked, PullLimits())
        assert description == PullDescription(
            error=f"pull request {asked.number} not found in octo/{asked.repo}: it does not exist, "
            "or the repository is private and GITHUB_TOKEN cannot read it"
        )
    assert json.loads(msgspec.json.encode(description)) == {"error": description.error}


LEAK = b'{"message": "API rate limit exceeded for 203.0.113.9 (ghp_echoedTokenAbc123). <script>"}'


async def test_a_rate_limit_beyond_the_wait_is_an_error_without_githubs_body(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [])
    reset = int(time.time()) + 3_600
    fake_github.add_fault(
        Fault(
            pattern=f"^/repos/octo/{repo}/pulls/7$",
            status=403,
            headers={
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Limit": "5000",
            },
            body=LEAK,
            times=None,
        )
    )

    description = await describe_pull(github, query(repo), PullLimits())

    assert description.error is not None
    assert description.error.startswith(
        "GitHub rate limit: GitHub's rate limit (5000 requests an hour for 'core') is reached: it resets in "
    )
    assert "203.0.113.9" not in description.error
    assert "ghp_" not in description.error
    assert len(fake_github.requests_to(f"/repos/octo/{repo}/")) == 1


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (
            502,
            "GitHub did not answer for pull request 7 of octo/{repo}: server errors or no connection, "
            "after retries; try again later",
        ),
        (
            403,
            "GitHub refused access to pull request 7 of octo/{repo} (403): GITHUB_TOKEN cannot read it, "
            "or GitHub blocks the request",
        ),
        (
            422,
            UNUSABLE,
        ),
    ],
)
async def test_githubs_errors_are_said_in_our_words(
    fake_github: FakeGitHub, github: GitHubClient, repo: str, status: int, says: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file("a.py", CHANGE)])
    fake_github.add_fault(
        Fault(pattern=f"^/repos/octo/{repo}/pulls/7/files$", status=status, body=LEAK, times=None)
    )

    description = await describe_pull(github, query(repo), PullLimits())

    assert description == PullDescription(error=says.format(repo=repo))
    # 5xx is tried again (FETCHER_HTTP_RETRIES=2 here), the others are not.
    assert len(fake_github.requests_to(f"/repos/octo/{repo}/pulls/7/files")) == (3 if status == 502 else 1)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"head": {}}',
        b'{"head": {"sha": "not-a-sha"}, "changed_files": 1}',
        b'{"head": {"sha": 7}}',
        b"[]",
    ],
)
async def test_an_answer_not_shaped_like_githubs_is_an_error(
    fake_github: FakeGitHub, github: GitHubClient, repo: str, body: bytes
) -> None:
    fake_github.add_fault(Fault(pattern=f"^/repos/octo/{repo}/pulls/7$", status=200, body=body, times=None))

    description = await describe_pull(github, query(repo), PullLimits())

    assert description == PullDescription(error=UNUSABLE.format(repo=repo))


async def test_a_files_page_not_shaped_like_githubs_is_an_error(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file("a.py", CHANGE)])
    fake_github.add_fault(
        Fault(
            pattern=f"^/repos/octo/{repo}/pulls/7/files$",
            status=200,
            body=b'[{"status": "added"}]',
            times=None,
        )
    )

    description = await describe_pull(github, query(repo), PullLimits())

    assert description.error == UNUSABLE.format(repo=repo)


async def test_the_pull_request_itself_over_the_byte_bound_is_an_error(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [])

    description = await describe_pull(github, query(repo), PullLimits(max_page_bytes=100))

    assert description == PullDescription(
        error=f"GitHub's answer for pull request 7 of octo/{repo} is over FETCHER_PULL_MAX_PAGE_BYTES=100"
    )


async def test_a_slow_github_ends_at_the_deadline(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    fake_github.add_pull("octo", repo, 7, [pull_file("a.py", CHANGE)])
    fake_github.add_fault(
        Fault(pattern=f"^/repos/octo/{repo}/pulls/7/files$", status=200, delay=3.0, times=None)
    )

    started = time.perf_counter()
    description = await describe_pull(github, query(repo), PullLimits(timeout_s=0.5))

    assert time.perf_counter() - started < 2.5
    assert description == PullDescription(
        error=f"describing pull request 7 of octo/{repo} took longer than FETCHER_PULL_TIMEOUT_S=0.5 s"
    )


# -- the NATS answer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not a pull request query: Input data was truncated"),
        (
            b'{"owner": "octo", "repo": "demo"}',
            "not a pull request query: Object missing required field `number`",
        ),
        (
            b'{"owner": "octo/x", "repo": "demo", "number": 1}',
            "not a pull request query: Expected `str` matching",
        ),
        (b'{"owner": "octo", "repo": "demo", "number": 0}', "not a pull request query: Expected `int` >= 1"),
        (
            b'{"owner": "o", "repo": "d", "number": 1, "ref": "x"}',
            "not a pull request query: Object contains unknown",
        ),
    ],
)
async def test_a_malformed_query_is_answered_with_what_is_wrong(
    github: GitHubClient, body: bytes, says: str
) -> None:
    reply = msgspec.json.decode(await answer(body, github, PullLimits()), type=PullDescription)

    assert reply.error is not None
    assert reply.error.startswith(says), reply.error
    assert reply.files == []


async def test_the_answer_is_the_description_as_json(
    fake_github: FakeGitHub, github: GitHubClient, repo: str
) -> None:
    sha = fake_github.add_pull("octo", repo, 7, [pull_file("a.py", NEW_FILE)])

    reply = await answer(msgspec.json.encode(query(repo)), github, PullLimits())

    assert json.loads(reply) == {"head_sha": sha, "files": [{"path": "a.py", "lines": [[1, 2]]}]}
