"""The fetcher's error tree: every way a fetch can fail, and whether trying again may help.

The worker maps these to job state in one place (`worker.Fetcher.handle`): a `FetchError`
fails the job with its message (users read it), unless it is `retryable` and the request has
deliveries left, in which case the request goes back to the queue.
"""

from __future__ import annotations


class FetchError(Exception):
    """A fetch that cannot complete; `str(error)` is the reason stored in the job."""

    retryable: bool = False


class InvalidRequestError(FetchError):
    """The fetch request message itself is malformed."""


class GitHubError(FetchError):
    """GitHub answered, but not with what we asked for."""


class RepositoryNotFoundError(GitHubError):
    """404: the repository or ref does not exist, or it is private and the token cannot see it."""


class AccessDeniedError(GitHubError):
    """403 without rate-limit headers: the token lacks access, or GitHub blocks the request."""


class RateLimitedError(GitHubError):
    """403/429 with rate-limit headers whose reset lies beyond FETCHER_RATE_LIMIT_MAX_WAIT_S."""


class RedirectRefusedError(GitHubError):
    """A redirect pointed at a host other than codeload or the API host; it is not followed."""


class AnswerTooLargeError(GitHubError):
    """An API answer read whole (a pull request, a page of its files) is larger than allowed."""

    def __init__(self, what: str, limit: int) -> None:
        self.limit = limit
        super().__init__(f"GitHub's answer for {what} is over {limit} bytes")


class GitHubUnavailableError(GitHubError):
    """5xx answers or dropped connections that outlived the bounded retries."""

    retryable = True


class DownloadTimeoutError(FetchError):
    """The download did not finish within FETCHER_DOWNLOAD_TIMEOUT_S (a slow or stalled server)."""


class DownloadTooSlowError(FetchError):
    """The download fell below the floor rate (FETCHER_MIN_RATE_BYTES_S over FETCHER_MIN_RATE_WINDOW_S).

    Not retryable: a server that trickles keeps trickling, and each try would hold a slot for
    another window while jobs queue behind it.
    """


class StorageFullError(FetchError):
    """The `repos` Object Store has no room for the snapshot (REPOS_MAX_BYTES)."""


class ArchiveError(FetchError):
    """The archive is not a readable .tar.gz (corrupt, truncated, not gzip, bad tar headers)."""


class LimitExceededError(ArchiveError):
    """The repository is past one of the size limits; the message names the setting."""

    def __init__(self, setting: str, limit: int, what: str) -> None:
        self.setting = setting
        self.limit = limit
        super().__init__(f"{what}: over the limit {setting}={limit}")
