"""Describe a pull request for a scan: its head commit, and the lines it adds or changes in each
Python file (jobs_contract.pulls: a PullQuery in, a PullDescription out, NATS request-reply on
PULLS_SUBJECT).

GitHub is asked `GET /repos/{o}/{r}/pulls/{n}` (the head sha and how many files changed), then
`GET /repos/{o}/{r}/pulls/{n}/files?per_page=100&page=K` page by page (GitHub lists at most 3,000
files); each file's `patch` gives its added lines (fetcher.diff). Everything is bounded: files
(FETCHER_PULL_MAX_FILES, so pages too: at most a hundredth of it), bytes of each API answer
(FETCHER_PULL_MAX_PAGE_BYTES) and of each patch (FETCHER_PULL_MAX_PATCH_BYTES), the whole answer's
time (FETCHER_PULL_TIMEOUT_S) and its size (NATS's max payload: the files that would not fit are
left out as `truncated`). What GitHub says when it fails stays in the fetcher's log; the answer
says what failed in our words.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec
from faststream.nats import NatsBroker, NatsMessage
from pydantic import WithJsonSchema

from fetcher.diff import PatchError, TooManyRangesError, added_lines
from fetcher.errors import (
    AccessDeniedError,
    AnswerTooLargeError,
    GitHubError,
    GitHubUnavailableError,
    RateLimitedError,
    RepositoryNotFoundError,
)
from fetcher.github import GitHubClient
from fetcher.settings import Settings
from fetcher.worker import Fetcher
from jobs_contract.pulls import PULLS_SUBJECT, PullDescription, PullFile, PullQuery, PullSkipped
from servicekit.redact import escaped

log = logging.getLogger("fetcher.pulls")

# Fetchers share the questions: each goes to one of them.
PULLS_QUEUE = "codereview-fetcher-pulls"
# Files per page: GitHub's most.
PER_PAGE = 100
# GitHub lists at most this many files of a pull request, however many it changes.
GITHUB_MAX_FILES = 3_000
# The path of the `skipped` entry that says the answer is truncated (it names no one file).
TRUNCATED_PATH = "*"
# Room kept in the reply for everything but the files: head sha, flags, the truncation entry.
_REPLY_RESERVE = 4_096
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Our rate-limit sentence quoted whole, cut at this (its numbers come from GitHub's headers).
_QUOTED_CHARS = 300
_T = TypeVar("_T")


@dataclass(frozen=True)
class PullLimits:
    """The bounds of one description (see the module docstring); `of` reads them from settings."""

    max_files: int = GITHUB_MAX_FILES
    max_page_bytes: int = 16 * 1024 * 1024
    max_patch_bytes: int = 1024 * 1024
    timeout_s: float = 60.0
    # The reply's most bytes: the connection's max payload (NATS's default is 1 MiB).
    max_reply_bytes: int = 1024 * 1024

    @classmethod
    def of(cls, settings: Settings, max_reply_bytes: int) -> PullLimits:
        return cls(
            max_files=settings.fetcher_pull_max_files,
            max_page_bytes=settings.fetcher_pull_max_page_bytes,
            max_patch_bytes=settings.fetcher_pull_max_patch_bytes,
            timeout_s=settings.fetcher_pull_timeout_s,
            max_reply_bytes=max_reply_bytes,
        )


class _Head(msgspec.Struct):
    sha: str


class _Pull(msgspec.Struct):
    """What is read of GitHub's pull request object (the rest is skipped unread)."""

    head: _Head
    changed_files: int | None = None


class _File(msgspec.Struct):
    """What is read of one entry of GitHub's pull request files list."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=4_096)]
    status: str = "modified"
    patch: str | None = None
    changes: int = 0
    previous_filename: str | None = None


async def describe_pull(github: GitHubClient, query: PullQuery, limits: PullLimits) -> PullDescription:
    """The pull request's head sha, its Python files with the lines it adds or changes, and the
    files left out with why; never raises for what GitHub does: `error` says it instead
    ("pull request 7 not found in o/r", "GitHub rate limit ...", the deadline passed, ...)."""
    what = f"pull request {query.number} of {query.owner}/{query.repo}"
    try:
        async with asyncio.timeout(limits.timeout_s) as deadline:
            return await _describe(github, query, limits)
    except TimeoutError:
        if not deadline.expired():
            raise
        return PullDescription(
            error=f"describing {what} took longer than FETCHER_PULL_TIMEOUT_S={limits.timeout_s:g} s"
        )
    except GitHubError as error:
        log.warning("could not describe %s: %s", what, escaped(str(error)))
        return PullDescription(error=_in_our_words(error, query, what))


def _in_our_words(error: GitHubError, query: PullQuery, what: str) -> str:
    """What failed, for the analyzer and its users: never GitHub's body (it stays in our log)."""
    if isinstance(error, RepositoryNotFoundError):
        return (
            f"pull request {query.number} not found in {query.owner}/{query.repo}: it does not exist, "
            "or the repository is private and GITHUB_TOKEN cannot read it"
        )
    if isinstance(error, RateLimitedError):
        # Our own sentence, from GitHub's rate-limit headers (limit, reset); made fit to show.
        return f"GitHub rate limit: {escaped(str(error)[:_QUOTED_CHARS])}"
    if isinstance(error, AccessDeniedError):
        return (
            f"GitHub refused access to {what} (403): GITHUB_TOKEN cannot read it, "
            "or GitHub blocks the request"
        )
    if isinstance(error, GitHubUnavailableError):
        return (
            f"GitHub did not answer for {what}: server errors or no connection, after retries; "
            "try again later"
        )
    if isinstance(error, AnswerTooLargeError):
        return f"GitHub's answer for {what} is over FETCHER_PULL_MAX_PAGE_BYTES={error.limit}"
    return f"GitHub gave no usable answer for {what} (the fetcher's log says what it was)"


async def _describe(github: GitHubClient, query: PullQuery, limits: PullLimits) -> PullDescription:
    owner, repo, number = query.owner, query.repo, query.number
    what = f"pull request {number} of {owner}/{repo}"
    pull = _decode(
        await github.pull_request(owner, repo, number, max_bytes=limits.max_page_bytes), _Pull, what
    )
    sha = pull.head.sha.lower()
    if not _SHA.fullmatch(sha):
        raise GitHubError(f"GitHub's answer for {what} has no head commit sha: {pull.head.sha[:100]!r}")
    reply = _Reply(limits.max_reply_bytes - len(sha) - _REPLY_RESERVE)
    wanted = min(limits.max_files, GITHUB_MAX_FILES)
    changed = pull.changed_files
    listed = 0
    page = 1
    more = changed is None or changed > 0
    while more and listed < wanted:
        try:
            body = await github.pull_request_files(
                owner, repo, number, page=page, per_page=PER_PAGE, max_bytes=limits.max_page_bytes
            )
        except AnswerTooLargeError as error:
            # The pages before it are good: describe those, and say where it stopped.
            return reply.done(
                sha,
                f"files from number {listed + 1} on are not described: a page of GitHub's list of "
                f"them is over FETCHER_PULL_MAX_PAGE_BYTES={error.limit}",
            )
        entries = _decode(body, list[_File], f"page {page} of the files of {what}")
        for entry in entries[: wanted - listed]:
            if not reply.add(_describe_file(entry, limits)):
                return reply.done(
                    sha,
                    f"files from number {listed + 1} on are not described: the answer would be "
                    f"over NATS's max payload of {limits.max_reply_bytes} bytes",
                )
            listed += 1
        # A short page is the last; GitHub's count, when it gives one, saves asking past it.
        more = len(entries) >= PER_PAGE and (changed is None or listed < changed)
        page += 1
    if listed >= wanted and (more or (changed is not None and changed > listed)):
        total = f"the {changed}" if changed is not None else "the"
        cap = (
            f"FETCHER_PULL_MAX_FILES={limits.max_files}"
            if limits.max_files < GITHUB_MAX_FILES
            else f"GitHub lists at most {GITHUB_MAX_FILES:,}"
        )
        return reply.done(sha, f"only the first {listed} of {total} changed files are described: {cap}")
    if changed is not None and changed > listed:
        return reply.done(
            sha,
            f"GitHub listed {listed} of the {changed} changed files (it lists at most "
            f"{GITHUB_MAX_FILES:,}); the rest are not described",
        )
    return reply.done(sha, None)


def _describe_file(entry: _File, limits: PullLimits) -> PullFile | PullSkipped:
    path = entry.filename
    if entry.status == "removed":
        return PullSkipped(path=path, reason="deleted")
    if not path.endswith(".py"):
        return PullSkipped(path=path, reason="not Python")
    if entry.status == "renamed" and entry.changes == 0:
        return PullSkipped(path=path, reason="renamed without changes")
    patch = entry.patch
    if patch is None:
        return PullSkipped(
            path=path, reason="no patch: GitHub sends none for a binary file or a diff too large to show"
        )
    size = len(patch.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_patch_bytes:
        return PullSkipped(
            path=path,
            reason=f"over the limits: its patch is {size} bytes, over "
            f"FETCHER_PULL_MAX_PATCH_BYTES={limits.max_patch_bytes}",
        )
    try:
        lines = added_lines(patch)
    except TooManyRangesError as error:
        return PullSkipped(path=path, reason=f"over the limits: {error}")
    except PatchError as error:
        return PullSkipped(path=path, reason=f"unreadable patch: {error}")
    if not lines:
        return PullSkipped(path=path, reason="no lines added or changed (only removed)")
    return PullFile(path=path, lines=lines)


class _Reply:
    """The description as it grows, within a byte budget for the encoded reply."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.files: list[PullFile] = []
        self.skipped: list[PullSkipped] = []

    def add(self, item: PullFile | PullSkipped) -> bool:
        """Keep `item` if it fits the budget (its JSON and a comma); False when it does not."""
        size = len(msgspec.json.encode(item)) + 1
        if size > self.budget:
            return False
        self.budget -= size
        if isinstance(item, PullFile):
            self.files.append(item)
        else:
            self.skipped.append(item)
        return True

    def done(self, sha: str, truncated: str | None) -> PullDescription:
        skipped = self.skipped
        if truncated is not None:
            skipped = [*skipped, PullSkipped(path=TRUNCATED_PATH, reason=truncated)]
        return PullDescription(
            head_sha=sha, files=self.files, skipped=skipped, truncated=truncated is not None
        )


def _decode(body: bytes, kind: type[_T], what: str) -> _T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as error:
        raise GitHubError(f"GitHub's answer for {what} is not what GitHub sends: {error}") from None


# -- NATS ----------------------------------------------------------------------------------------


async def answer(body: bytes, github: GitHubClient, limits: PullLimits) -> bytes:
    """The encoded PullDescription for one request's body; never raises (a malformed query, a
    bug: `error` says so, and a bug's traceback goes to the log)."""
    started = time.monotonic()
    try:
        query = msgspec.json.decode(body, type=PullQuery)
    except msgspec.DecodeError as error:
        return msgspec.json.encode(PullDescription(error=f"not a pull request query: {error}"))
    try:
        description = await describe_pull(github, query, limits)
    except Exception:
        log.exception("describing pull request %d of %s/%s failed", query.number, query.owner, query.repo)
        description = PullDescription(
            error=f"describing pull request {query.number} of {query.owner}/{query.repo} failed "
            "inside the fetcher (its log has the details)"
        )
    log.info(
        "pull request %d of %s/%s: %s in %.2f s",
        query.number,
        query.owner,
        query.repo,
        escaped(description.error)
        if description.error
        else f"head {description.head_sha}, {len(description.files)} Python files, "
        f"{len(description.skipped)} skipped{', truncated' if description.truncated else ''}",
        time.monotonic() - started,
    )
    return msgspec.json.encode(description)


def _query_schema() -> dict[str, Any]:
    # PullQuery holds no other Struct, so its component is whole (no $ref left to inline).
    _, components = msgspec.json.schema_components([PullQuery])
    schema: dict[str, Any] = components[PullQuery.__name__]
    return schema


# The handler reads the raw bytes (to answer a malformed query with a reason); this annotation
# only gives the AsyncAPI document the real shape.
PullQueryPayload = Annotated[Any, WithJsonSchema(_query_schema())]


def subscribe_pulls(broker: NatsBroker, settings: Settings, fetcher_key: str) -> None:
    """Answer PullQuery requests on PULLS_SUBJECT (queue group PULLS_QUEUE, at most
    FETCHER_PULL_CONCURRENCY at once) with the Fetcher's GitHub client, found in the broker's
    context under `fetcher_key` once the lifespan has put it there."""

    @broker.subscriber(
        PULLS_SUBJECT,
        queue=PULLS_QUEUE,
        max_workers=settings.fetcher_pull_concurrency,
        decoder=_raw_body,
        title="pull requests",
        description=(
            "Request-reply (core NATS, queue group codereview-fetcher-pulls): a PullQuery (owner, "
            "repo, number) is answered with a PullDescription (jobs_contract.pulls): head_sha, "
            "files (path, lines: the head commit's added or changed line ranges), skipped (path, "
            "reason), truncated, or error."
        ),
    )
    async def describe_pulls(body: PullQueryPayload, message: NatsMessage) -> bytes:
        # Looked up here, not injected: FastStream resolves an injected Context's annotation in
        # this module's globals, where `fetcher_key` is not.
        fetcher: Fetcher | None = broker.context.get(fetcher_key)
        if fetcher is None:
            return msgspec.json.encode(PullDescription(error="the fetcher is starting; ask again"))
        limits = PullLimits.of(fetcher.settings, fetcher.nc.max_payload)
        return await answer(message.body, fetcher.github, limits)

    # Imported here: fetcher.subscribers imports this module first. The reply goes to each
    # question's own inbox; this publisher is never used, it only puts the reply's shape in the document.
    from fetcher.subscribers import json_schema

    broker.publisher(
        "_INBOX.{inbox}",
        schema=Annotated[Any, WithJsonSchema(json_schema(PullDescription))],
        title="pull request descriptions",
        description=(
            f"The reply to a question on {PULLS_SUBJECT}, sent to its reply subject (the asker's "
            "inbox): a PullDescription, JSON."
        ),
    )


def _raw_body(message: NatsMessage) -> bytes:
    body: bytes = message.body
    return body
