"""The GitHub client's rules against github.com's real host names (httpx MockTransport, no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from fetcher.errors import RateLimitedError, RedirectRefusedError
from fetcher.github import GitHubClient, GitHubConfig


class Recorder:
    """A scripted github.com: answers by URL, records every request."""

    def __init__(self, routes: dict[str, httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes.get(str(request.url), httpx.Response(404, json={"message": "Not Found"}))


TOKEN = "ghp_secret"


def client(recorder: Recorder, token: str | None = TOKEN, **config: float) -> GitHubClient:
    return GitHubClient(
        GitHubConfig(token=token, backoff_s=0.0, **config),  # type: ignore[arg-type]
        transport=httpx.MockTransport(recorder),
    )


async def download(github: GitHubClient, ref: str = "main") -> bytes:
    received = bytearray()

    async def on_chunk(chunk: bytes, announced: int | None) -> None:
        received.extend(chunk)

    await github.download_tarball("octo", "demo", ref, on_chunk)
    return bytes(received)


async def test_the_token_goes_to_api_github_com_and_not_to_codeload() -> None:
    codeload = "https://codeload.github.com/octo/demo/legacy.tar.gz/refs/heads/main"
    recorder = Recorder(
        {
            "https://api.github.com/repos/octo/demo/tarball/main": httpx.Response(
                302, headers={"Location": codeload}
            ),
            codeload: httpx.Response(200, stream=httpx.ByteStream(b"archive bytes")),
        }
    )
    async with client(recorder) as github:
        assert await download(github) == b"archive bytes"

    api, archive = recorder.requests
    assert api.headers["authorization"] == "Bearer ghp_secret"
    assert archive.url.host == "codeload.github.com"
    assert "authorization" not in archive.headers


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/octo/demo.tar.gz",
        "http://codeload.github.com/octo/demo/legacy.tar.gz/main",  # no downgrade to plain HTTP
        "https://api.github.com.evil.example/x",
        "https://api.github.com:8443/x",
    ],
)
async def test_redirects_elsewhere_are_refused_without_a_request(location: str) -> None:
    recorder = Recorder(
        {
            "https://api.github.com/repos/octo/demo/tarball/main": httpx.Response(
                302, headers={"Location": location}
            )
        }
    )
    async with client(recorder) as github:
        with pytest.raises(RedirectRefusedError, match="not followed"):
            await download(github)

    assert [str(r.url) for r in recorder.requests] == ["https://api.github.com/repos/octo/demo/tarball/main"]


async def test_a_token_holder_hitting_the_limit_is_told_to_wait_not_to_set_a_token() -> None:
    recorder = Recorder(
        {
            "https://api.github.com/repos/octo/demo": httpx.Response(
                429, headers={"Retry-After": "3600", "X-RateLimit-Limit": "5000"}
            )
        }
    )
    async with client(recorder, rate_limit_max_wait_s=10) as github:
        with pytest.raises(RateLimitedError) as raised:
            await github.default_branch("octo", "demo")

    assert str(raised.value) == (
        "GitHub's rate limit (5000 requests an hour for 'core') is reached: it resets in 3600 s, "
        "beyond FETCHER_RATE_LIMIT_MAX_WAIT_S=10; the token's own limit is spent, try later"
    )


async def test_names_are_quoted_into_the_path() -> None:
    recorder = Recorder({})
    async with client(recorder, token=None) as github:
        with pytest.raises(Exception, match="GitHub has no"):
            await github.commit_sha("octo", "demo", "feature/x y")

    [request] = recorder.requests
    # Slashes stay (refs are paths: heads/feature-a); everything else is percent-encoded.
    assert request.url.raw_path == b"/repos/octo/demo/commits/feature/x%20y"
    assert "authorization" not in request.headers


class _DropsAfter(httpx.AsyncByteStream):
    """A body that sends `data[:cut]` and then fails as a reset connection does."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data[: self.cut]
        raise httpx.ReadError("connection reset by peer")


async def test_a_download_dropped_midway_starts_over_and_the_caller_resets() -> None:
    archive = bytes(range(256)) * 100
    attempts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if len(attempts) == 1:
            return httpx.Response(
                200, headers={"Content-Length": str(len(archive))}, stream=_DropsAfter(archive, 5000)
            )
        return httpx.Response(200, stream=httpx.ByteStream(archive))

    received = bytearray()

    async def on_attempt() -> None:
        attempts.append(len(received))
        received.clear()

    async def on_chunk(chunk: bytes, announced: int | None) -> None:
        received.extend(chunk)

    async with GitHubClient(GitHubConfig(backoff_s=0.0), transport=httpx.MockTransport(answer)) as github:
        assert await github.download_tarball("octo", "demo", "main", on_chunk, on_attempt) == len(archive)

    assert bytes(received) == archive
    assert attempts == [0, 5000]  # the second attempt was told to drop the first one's 5,000 bytes


@pytest.fixture
def retries() -> Iterator[list[RetryDetails]]:
    """Every retry stamina schedules, with the wait it chose."""
    scheduled: list[RetryDetails] = []

    def record(details: RetryDetails) -> None:
        scheduled.append(details)

    before = get_on_retry_hooks()
    set_on_retry_hooks([record])
    try:
        yield scheduled
    finally:
        set_on_retry_hooks(list(before))


async def test_a_5xx_with_retry_after_waits_what_github_asks(retries: list[RetryDetails]) -> None:
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "0.25"}),
            httpx.Response(502),
            httpx.Response(200, json={"default_branch": "trunk"}),
        ]
    )
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    config = GitHubConfig(backoff_s=0.0, retries=3)
    async with GitHubClient(config, transport=httpx.MockTransport(answer)) as github:
        assert await github.default_branch("octo", "demo") == "trunk"

    assert len(seen) == 3
    # GitHub's Retry-After first; then the policy's own backoff (FETCHER_RETRY_BACKOFF_S=0 here).
    assert [r.wait_for for r in retries] == [0.25, 0.0]
    assert [type(r.caused_by).__name__ for r in retries] == ["_Retry", "_Retry"]
