"""Talk to GitHub's REST API (or GitHub Enterprise, or the tests' fake): repository, commit, tarball,
pull request and its files.

Rules this client keeps, whatever the answers say:
- GITHUB_TOKEN goes only to the host of GITHUB_API_URL (scheme and port included).
- Redirects are followed by hand, and only to https://codeload.github.com or the API host.
- 5xx answers and dropped connections are retried a bounded number of times with backoff;
  403/429 with rate-limit headers wait for the reset if it is near enough, else fail with a
  message that names the limit and suggests GITHUB_TOKEN.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import stamina

from fetcher.errors import (
    AccessDeniedError,
    AnswerTooLargeError,
    DownloadTooSlowError,
    GitHubError,
    GitHubUnavailableError,
    LimitExceededError,
    RateLimitedError,
    RedirectRefusedError,
    RepositoryNotFoundError,
)

log = logging.getLogger("fetcher.github")

CODELOAD_HOST = "codeload.github.com"
_REDIRECTS = {301, 302, 303, 307, 308}
# The longest backoff between two tries when GitHub names no wait of its own.
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class GitHubConfig:
    api_url: str = "https://api.github.com"
    token: str | None = None
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    rate_limit_max_wait_s: float = 60.0
    max_redirects: int = 3
    max_download_bytes: int = 500 * 1024 * 1024
    # The floor rate (FETCHER_MIN_RATE_BYTES_S over FETCHER_MIN_RATE_WINDOW_S); 0: no floor.
    min_rate_bytes_s: int = 10 * 1024
    min_rate_window_s: float = 30.0


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


class GitHubClient:
    """One httpx.AsyncClient for all fetches; open with `async with GitHubClient(config)`."""

    def __init__(self, config: GitHubConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._api = httpx.URL(config.api_url.rstrip("/") + "/")
        self._client = httpx.AsyncClient(
            timeout=config.timeout_s,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "codereview-fetcher", "X-GitHub-Api-Version": "2022-11-28"},
        )

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    # -- public ----------------------------------------------------------------------------

    async def default_branch(self, owner: str, repo: str) -> str:
        """The repository's default branch. Raises RepositoryNotFoundError, RateLimitedError, GitHubError."""
        async with self._get(self._repo_path(owner, repo), what=f"repository {owner}/{repo}") as response:
            await response.aread()
            try:
                branch = response.json()["default_branch"]
            except (ValueError, KeyError, TypeError) as error:
                raise GitHubError(f"GitHub's answer for {owner}/{repo} has no default_branch") from error
        if not isinstance(branch, str) or not branch:
            raise GitHubError(f"GitHub's answer for {owner}/{repo} has no default_branch")
        return branch

    async def commit_sha(self, owner: str, repo: str, ref: str) -> str:
        """The full sha `ref` points at. Raises RepositoryNotFoundError when the ref does not exist."""
        path = f"{self._repo_path(owner, repo)}/commits/{quote(ref, safe='/')}"
        async with self._get(
            path, what=f"ref {ref!r} of {owner}/{repo}", accept="application/vnd.github.sha"
        ) as response:
            body = (await response.aread()).decode(errors="replace").strip()
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                body = str(json.loads(body)["sha"])
            except (ValueError, KeyError, TypeError) as error:
                raise GitHubError(f"GitHub's answer for {owner}/{repo}@{ref} has no sha") from error
        return body.lower()

    async def pull_request(self, owner: str, repo: str, number: int, *, max_bytes: int) -> bytes:
        """The JSON body of `GET /repos/{owner}/{repo}/pulls/{number}` (at most `max_bytes`).

        Raises RepositoryNotFoundError (no such pull request or repository, or private),
        RateLimitedError, AccessDeniedError, GitHubUnavailableError, AnswerTooLargeError, GitHubError.
        """
        path = f"{self._repo_path(owner, repo)}/pulls/{number}"
        return await self._read(path, f"pull request {number} of {owner}/{repo}", max_bytes)

    async def pull_request_files(
        self, owner: str, repo: str, number: int, *, page: int, per_page: int, max_bytes: int
    ) -> bytes:
        """The JSON body of one page of `GET /repos/{owner}/{repo}/pulls/{number}/files` (a list
        of files with their `patch`; GitHub lists at most 3,000), at most `max_bytes`.

        Raises what `pull_request` raises.
        """
        path = f"{self._repo_path(owner, repo)}/pulls/{number}/files?per_page={per_page}&page={page}"
        what = f"page {page} of the files of pull request {number} of {owner}/{repo}"
        return await self._read(path, what, max_bytes)

    async def download_tarball(
        self,
        owner: str,
        repo: str,
        ref: str,
        on_chunk: Callable[[bytes, int | None], Awaitable[None]],
        on_attempt: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Stream the tarball of `ref` to `on_chunk(chunk, announced_size)`; returns bytes received.

        A dropped connection restarts the download (bounded retries); `on_attempt` is awaited
        before each attempt so the caller can reset what it built from earlier chunks.
        Raises RepositoryNotFoundError, RateLimitedError, RedirectRefusedError, GitHubUnavailableError,
        LimitExceededError (FETCHER_MAX_DOWNLOAD_BYTES), DownloadTooSlowError (the archive's body
        came slower than the floor rate, see `_stream`; not retried) and whatever `on_chunk` raises.
        """
        path = f"{self._repo_path(owner, repo)}/tarball/{quote(ref, safe='/')}"
        what = f"{owner}/{repo} at {ref!r}"
        attempts = 0
        try:
            # The download policy: a connection dropped mid-body restarts the whole download.
            async for attempt in self._policy():
                with attempt:
                    attempts = attempt.num
                    if on_attempt is not None:
                        await on_attempt()
                    return await self._stream(path, what, on_chunk)
        except httpx.TransportError as error:
            raise GitHubUnavailableError(
                f"downloading {what} failed {attempts} times: {_describe(error)}"
            ) from error
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def _stream(
        self, path: str, what: str, on_chunk: Callable[[bytes, int | None], Awaitable[None]]
    ) -> int:
        async with self._get(path, what=what) as response:
            announced = _content_length(response)
            limit = self.config.max_download_bytes
            if announced is not None and announced > limit:
                raise LimitExceededError(
                    "FETCHER_MAX_DOWNLOAD_BYTES", limit, f"the archive is {announced} bytes"
                )
            received = 0
            floor = _RateFloor(self.config.min_rate_bytes_s, self.config.min_rate_window_s)
            chunks = response.aiter_raw()
            while True:
                try:
                    chunk = await floor.next(chunks)
                except StopAsyncIteration:
                    return received
                except _TooSlow as error:
                    raise DownloadTooSlowError(
                        f"the download of {what} was slower than FETCHER_MIN_RATE_BYTES_S="
                        f"{floor.rate} bytes/s over FETCHER_MIN_RATE_WINDOW_S={floor.window_s:g} s "
                        f"({error.got} bytes in the last window, {received} in all): it gave its "
                        "slot up to the jobs waiting (FETCHER_MIN_RATE_BYTES_S=0 waits up to "
                        "FETCHER_DOWNLOAD_TIMEOUT_S instead)"
                    ) from None
                received += len(chunk)
                if received > limit:
                    raise LimitExceededError(
                        "FETCHER_MAX_DOWNLOAD_BYTES", limit, "the archive is larger than allowed"
                    )
                await on_chunk(chunk, announced)

    async def _read(self, path: str, what: str, max_bytes: int) -> bytes:
        """A whole 200 body of at most `max_bytes`, read as it comes and refused once past them.

        Asked unencoded (`Accept-Encoding: identity`): a gzip body can inflate a thousandfold
        within one chunk before any count sees it.
        """
        async with self._get(path, what=what, encoding="identity") as response:
            announced = _content_length(response)
            if announced is not None and announced > max_bytes:
                raise AnswerTooLargeError(what, max_bytes)
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise AnswerTooLargeError(what, max_bytes)
        return bytes(body)

    # -- requests ----------------------------------------------------------------------------

    @staticmethod
    def _repo_path(owner: str, repo: str) -> str:
        return f"repos/{quote(owner, safe='')}/{quote(repo, safe='')}"

    def _headers_for(self, url: httpx.URL, accept: str, encoding: str | None = None) -> dict[str, str]:
        headers = {"Accept": accept}
        if encoding is not None:
            headers["Accept-Encoding"] = encoding
        if self.config.token and _origin(url) == _origin(self._api):
            headers["Authorization"] = f"Bearer {self.config.token}"
        return headers

    def _redirect_allowed(self, url: httpx.URL) -> bool:
        if _origin(url) == _origin(self._api):
            return True
        return url.scheme == "https" and url.host == CODELOAD_HOST

    def _policy(self) -> AsyncIterator[stamina.Attempt]:
        """One retry policy per kind of call (API request, whole download): FETCHER_HTTP_RETRIES
        retries, exponential backoff from FETCHER_RETRY_BACKOFF_S, and GitHub's own wait
        (Retry-After, X-RateLimit-Reset) instead when it names one. No time limit of its own:
        the download's deadline (FETCHER_DOWNLOAD_TIMEOUT_S) bounds it."""
        return stamina.retry_context(
            on=_retry_on,
            attempts=self.config.retries + 1,
            timeout=None,
            wait_initial=self.config.backoff_s,
            wait_max=_MAX_BACKOFF_S,
            wait_jitter=self.config.backoff_s,
        )

    async def _send(self, path: str, what: str, accept: str, encoding: str | None = None) -> httpx.Response:
        """GET `path`, following allowed redirects by hand; the response's body is unread."""
        url = self._api.join(path)
        redirects = 0
        while True:
            request = self._client.build_request("GET", url, headers=self._headers_for(url, accept, encoding))
            response = await self._client.send(request, stream=True)
            if response.status_code not in _REDIRECTS:
                return response
            await response.aclose()
            location = response.headers.get("location")
            if not location:
                raise GitHubError(f"GitHub redirected {what} without a Location")
            target = url.join(location)
            if not self._redirect_allowed(target):
                raise RedirectRefusedError(
                    f"GitHub redirected {what} to {target.scheme}://{target.host}, "
                    f"which is neither {CODELOAD_HOST} nor the API host; not followed"
                )
            redirects += 1
            if redirects > self.config.max_redirects:
                raise GitHubError(f"more than {self.config.max_redirects} redirects for {what}")
            url = target

    async def _answer(self, path: str, what: str, accept: str, encoding: str | None = None) -> httpx.Response:
        """A 200 response (body unread); raises _Retry for what another try may fix."""
        response = await self._send(path, what, accept, encoding)
        status = response.status_code
        if status == 200:
            return response
        body = (await response.aread())[:2000].decode(errors="replace")
        await response.aclose()
        if status in (403, 429) and (wait := self._rate_limit_wait(response)) is not None:
            if wait > self.config.rate_limit_max_wait_s:
                raise RateLimitedError(_rate_limit_message(response, wait, self.config))
            log.warning("GitHub rate limit for %s; waiting %.1f s", what, wait)
            raise _Retry(_rate_limit_message(response, wait, self.config), after=wait, rate_limited=True)
        if status == 404:
            raise RepositoryNotFoundError(
                f"GitHub has no {what}: it does not exist, or it is private "
                "(set GITHUB_TOKEN to a token that can read it)"
            )
        if status == 403:
            raise AccessDeniedError(f"GitHub refused access to {what} (403): {_message(body)}")
        if status >= 500:
            retry_after = _seconds(response.headers.get("retry-after"))
            raise _Retry(f"GitHub answered {status} for {what}", after=retry_after)
        raise GitHubError(f"GitHub answered {status} for {what}: {_message(body)}")

    @asynccontextmanager
    async def _get(
        self,
        path: str,
        *,
        what: str,
        accept: str = "application/vnd.github+json",
        encoding: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """GET with redirects, retries and rate-limit waits; yields a 200 response, body unread.

        `encoding`: the Accept-Encoding to ask for (None: httpx's own)."""
        attempts = 0
        try:
            async for attempt in self._policy():
                with attempt:
                    attempts = attempt.num
                    response = await self._answer(path, what, accept, encoding)
        except _Retry as error:
            if error.rate_limited:
                raise RateLimitedError(str(error)) from error
            raise GitHubUnavailableError(f"{error} {attempts} times") from error
        except httpx.TransportError as error:
            raise GitHubUnavailableError(
                f"GitHub unreachable for {what} after {attempts} attempts: {_describe(error)}"
            ) from error
        try:
            yield response
        finally:
            await response.aclose()

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds until the rate limit lifts, if this 403/429 is a rate limit; else None."""
        headers = response.headers
        if (retry_after := headers.get("retry-after")) is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return self.config.rate_limit_max_wait_s + 1
        if headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(0.0, float(headers.get("x-ratelimit-reset", "")) - time.time())
            except ValueError:
                return self.config.rate_limit_max_wait_s + 1
        if response.status_code == 429:
            return self.config.backoff_s
        return None


class _TooSlow(Exception):  # noqa: N818 - a signal from _RateFloor to _stream, never seen outside
    def __init__(self, got: int) -> None:
        super().__init__(got)
        self.got = got


class _RateFloor:
    """Reads a body's chunks and raises _TooSlow when it comes slower than a floor rate.

    The rule: every `rate x window_s` bytes must arrive within `window_s` seconds of waiting for
    them. Only the waits for the next chunk count, not what the caller does with a chunk (feeding
    the archive reader, a progress write to NATS), so the floor judges GitHub and never our side.
    A window that reaches its bytes starts the next at once; bytes past the quota are not banked,
    so a fast start does not buy a stall later. rate 0: no floor, chunks as they come.
    """

    def __init__(self, rate: int, window_s: float) -> None:
        self.rate = rate
        self.window_s = window_s
        self._quota = rate * window_s
        self._got = 0
        self._left_s = window_s

    async def next(self, chunks: AsyncIterator[bytes]) -> bytes:
        """The next chunk; StopAsyncIteration at the end, _TooSlow when the window runs out first."""
        if not self.rate:
            return await anext(chunks)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._left_s) as window:
                chunk = await anext(chunks)
        except TimeoutError:
            if window.expired():
                raise _TooSlow(self._got) from None
            raise
        self._got += len(chunk)
        if self._got >= self._quota:
            self._got, self._left_s = 0, self.window_s
        else:
            self._left_s -= time.monotonic() - started
        return chunk


class _Retry(Exception):  # noqa: N818 - a signal to the retry policy, never seen outside
    """An answer that another try may fix (5xx, a rate limit that lifts soon enough).

    `after`: the seconds GitHub asked us to wait (Retry-After, X-RateLimit-Reset), if it did.
    """

    def __init__(self, message: str, *, after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.after = after
        self.rate_limited = rate_limited


def _retry_on(error: Exception) -> bool | float:
    """stamina's backoff hook: retry dropped connections and _Retry, honouring GitHub's wait."""
    if isinstance(error, _Retry):
        return True if error.after is None else error.after
    return isinstance(error, httpx.TransportError)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _message(body: str) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else body[:200]


def _rate_limit_message(response: httpx.Response, wait: float, config: GitHubConfig) -> str:
    headers = response.headers
    limit = headers.get("x-ratelimit-limit")
    resource = headers.get("x-ratelimit-resource", "core")
    named = (
        f"GitHub's rate limit ({limit} requests an hour for '{resource}')" if limit else "GitHub's rate limit"
    )
    hint = (
        "; set GITHUB_TOKEN for a higher limit"
        if not config.token
        else "; the token's own limit is spent, try later"
    )
    return (
        f"{named} is reached: it resets in {math.ceil(wait)} s, beyond "
        f"FETCHER_RATE_LIMIT_MAX_WAIT_S={config.rate_limit_max_wait_s:g}{hint}"
    )
