"""What the analyzer asks the fetcher about a pull request (NATS request-reply on PULLS_SUBJECT).

The fetcher holds the GitHub client (token, rate limits, host), so it answers: the pull
request's head commit and, for each file, the lines the pull request adds or changes (from
GitHub's pull request files API and each file's patch), and the files it cannot tell about.
The analyzer then fetches the head commit as a job and scans only those lines' functions.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

PULLS_SUBJECT = "codereview.pulls.describe"

_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]


class PullQuery(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    owner: _NAME
    repo: _NAME
    number: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


class PullFile(msgspec.Struct, kw_only=True, frozen=True):
    """A Python file the pull request adds or changes; `lines`: inclusive (start, end) ranges of
    the head commit's lines it adds or changes, sorted, merged."""

    path: str
    lines: list[tuple[int, int]]


class PullSkipped(msgspec.Struct, kw_only=True, frozen=True):
    """A file of the pull request left out, and why ("deleted", "not Python", "no patch: ...")."""

    path: str
    reason: str


class PullDescription(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The reply. `error` set (and the rest empty): the pull request could not be described, in
    our words ("pull request 7 not found in owner/repo", "GitHub rate limit ...")."""

    head_sha: str = ""
    files: list[PullFile] = []
    skipped: list[PullSkipped] = []
    # More files changed than FETCHER_PULL_MAX_FILES (or GitHub's own 3,000 cap): the rest are
    # not described, and `skipped` ends with one entry saying so.
    truncated: bool = False
    error: str | None = None
