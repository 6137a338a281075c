"""repo_url parsing: every accepted form, and the refusals (with no network call: parsing is pure)."""

from __future__ import annotations

import msgspec
import pytest

from analyzer.errors import InvalidRepoUrl
from analyzer.repo_url import ACCEPTED_FORMS, RepoTarget, parse_repo_url
from jobs_contract import REF_MAX_CHARS, FetchRequest, decode_fetch_request


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/octo/hello", RepoTarget(owner="octo", repo="hello")),
        ("https://github.com/octo/hello.git", RepoTarget(owner="octo", repo="hello")),
        ("https://github.com/octo/hello/", RepoTarget(owner="octo", repo="hello")),
        ("https://github.com/octo/hello.git/", RepoTarget(owner="octo", repo="hello")),
        ("https://www.github.com/octo/hello", RepoTarget(owner="octo", repo="hello")),
        ("http://github.com/octo/hello", RepoTarget(owner="octo", repo="hello")),
        ("HTTPS://GitHub.com/Octo/Hello", RepoTarget(owner="Octo", repo="Hello")),
        ("  https://github.com/octo/hello\n", RepoTarget(owner="octo", repo="hello")),
        (
            "https://github.com/python/cpython/tree/3.12",
            RepoTarget(owner="python", repo="cpython", ref="3.12"),
        ),
        ("https://github.com/octo/hello/tree/v1.0.0", RepoTarget(owner="octo", repo="hello", ref="v1.0.0")),
        (
            "https://github.com/octo/hello/tree/feature/new-parser/",
            RepoTarget(owner="octo", repo="hello", ref="feature/new-parser"),
        ),
        (
            "https://github.com/octo/hello/tree/0123456789abcdef0123456789abcdef01234567",
            RepoTarget(owner="octo", repo="hello", ref="0123456789abcdef0123456789abcdef01234567"),
        ),
        ("https://github.com/a-b-c/x.y_z-1", RepoTarget(owner="a-b-c", repo="x.y_z-1")),
        ("https://github.com/octo/.github", RepoTarget(owner="octo", repo=".github")),
    ],
)
def test_accepted_forms(url: str, expected: RepoTarget) -> None:
    assert parse_repo_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "github.com/octo/hello",
        "ftp://github.com/octo/hello",
        "git@github.com:octo/hello.git",
        "ssh://git@github.com/octo/hello",
        "https://gitlab.com/octo/hello",
        "https://github.com.evil.example/octo/hello",
        "https://evil.example/github.com/octo/hello",
        "https://github.com@evil.example/octo/hello",
        "https://user:pass@github.com/octo/hello",
        "https://octo@github.com/octo/hello",
        "https://github.com:443/octo/hello",
        "https://api.github.com/repos/octo/hello",
        "https://gist.github.com/octo/hello",
        "https://github.com",
        "https://github.com/",
        "https://github.com/octo",
        "https://github.com/octo/",
        "https://github.com//hello",
        "https://github.com/octo/hello/blob/main/x.py",
        "https://github.com/octo/hello/pulls",
        "https://github.com/octo/hello/tree",
        "https://github.com/octo/hello/tree/",
        "https://github.com/octo/hello//",
        "https://github.com/octo/hello?tab=readme",
        "https://github.com/octo/hello#readme",
        "https://github.com/octo/hel%6Co",
        "https://github.com/octo/hel lo",
        "https://github.com/octo/hello\x00",
        "https://github.com/oc\\to/hello",
        "https://github.com/-octo/hello",
        "https://github.com/octo-/hello",
        "https://github.com/oc--to/hello",
        "https://github.com/" + "o" * 40 + "/hello",
        "https://github.com/octo/" + "r" * 101,
        "https://github.com/octo/..",
        "https://github.com/octo/.",
        "https://github.com/octo/he$llo",
        "https://github.com/octo/héllo",
        "https://github.com/orgs/octo",
        "https://github.com/settings/profile",
        "https://github.com/octo/hello/tree/../../etc",
        "https://github.com/octo/hello/tree/a..b",
        "https://github.com/octo/hello/tree/-rf",
        "https://github.com/octo/hello/tree/main.lock",
        "https://github.com/octo/hello/tree/.hidden",
        "https://github.com/octo/hello/tree/a//b",
        "https://github.com/octo/hello/tree/a~1",
        "https://github.com/octo/hello/tree/a^b",
        "https://github.com/octo/hello/tree/a:b",
        "https://github.com/octo/hello/tree/@{-1}",
        "https://github.com/octo/hello" + "/x" * 2000,
    ],
)
def test_refused_forms_say_what_is_accepted(url: str) -> None:
    with pytest.raises(InvalidRepoUrl) as caught:
        parse_repo_url(url)
    assert caught.value.status_code == 422
    assert ACCEPTED_FORMS in caught.value.detail
    assert caught.value.extra == {"accepted": ACCEPTED_FORMS}


def test_refusal_names_the_reason() -> None:
    with pytest.raises(InvalidRepoUrl, match=r"only github\.com repository URLs"):
        parse_repo_url("https://gitlab.com/octo/hello")
    with pytest.raises(InvalidRepoUrl, match="'orgs' is not a GitHub user"):
        parse_repo_url("https://github.com/orgs/octo")


def test_a_huge_url_is_not_echoed_whole() -> None:
    url = "https://github.com/octo/" + "r" * 5000
    with pytest.raises(InvalidRepoUrl) as caught:
        parse_repo_url(url)
    assert len(caught.value.detail) < 700


def test_what_the_analyzer_accepts_the_fetcher_accepts_too() -> None:
    # One rule for names and ref length: jobs_contract's, which the fetch request struct enforces.
    longest = "r" * REF_MAX_CHARS
    for url in (
        f"https://github.com/octo/hello/tree/{longest}",
        "https://github.com/a-b-c/x.y_z-1",
        f"https://github.com/{'o' * 39}/{'r' * 100}",
    ):
        target = parse_repo_url(url)
        request = FetchRequest(
            job_id="j1", owner=target.owner, repo=target.repo, ref=target.ref, requested_at=1.0
        )
        assert decode_fetch_request(msgspec.json.encode(request)) == request
    for url in (
        f"https://github.com/octo/hello/tree/{longest}r",
        f"https://github.com/{'o' * 40}/hello",
        f"https://github.com/octo/{'r' * 101}",
        "https://github.com/octo/..",
    ):
        with pytest.raises(InvalidRepoUrl):
            parse_repo_url(url)
