"""Parse the `repo_url` users send to POST /analyze/start, strictly and without any network call.

Accepted: `https://github.com/OWNER/REPO`, optionally with `http://`, `www.`, a `.git` suffix, a
trailing slash, or `/tree/REF` (a branch, tag or commit; branch names may hold slashes).
Everything else is refused with a message that says what is accepted: other hosts, ports,
`user@host` tricks, query strings and fragments, percent-escapes, other GitHub pages
(`/blob/...`, `/pulls`), and names GitHub itself would never give a repository.
"""

from __future__ import annotations

import re

import msgspec

from analyzer.errors import InvalidRepoUrl
from jobs_contract import OWNER_PATTERN, REF_MAX_CHARS, REPO_PATTERN

ACCEPTED_FORMS = (
    "https://github.com/OWNER/REPO, optionally with http://, www., a .git suffix, "
    "a trailing slash, or /tree/REF to pick a branch, tag or commit"
)
MAX_URL_CHARS = 2048

# Scheme and host only; everything after the host must start with "/" (so "github.com.evil.com",
# "github.com:443" and "github.com@evil.com" all fail here).
_PREFIX = re.compile(r"(?i:https?://(?:www\.)?github\.com)(?P<path>/.*)?", re.DOTALL)
# Owner and repository names are the contract's (GitHub's own rules), as the fetcher checks them.
_OWNER = re.compile(OWNER_PATTERN)
_REPO = re.compile(REPO_PATTERN)
# Characters a ref may use here: git allows more, but none of the rest appear in real branch/tag names
# that a URL carries unescaped, and each one is a way to smuggle something into the fetcher's URL.
# The length is the contract's.
_REF = re.compile(rf"[A-Za-z0-9._/+-]{{1,{REF_MAX_CHARS}}}")
# First path segments that are GitHub pages, never accounts (github.com/orgs/x is not a repository).
_RESERVED_OWNERS = frozenset(
    {
        "about",
        "apps",
        "collections",
        "enterprise",
        "explore",
        "features",
        "login",
        "marketplace",
        "new",
        "notifications",
        "orgs",
        "organizations",
        "pricing",
        "pulls",
        "search",
        "settings",
        "site",
        "sponsors",
        "topics",
        "users",
    }
)


class RepoTarget(msgspec.Struct, kw_only=True, frozen=True):
    """A GitHub repository and, optionally, the ref to fetch (None: its default branch)."""

    owner: str
    repo: str
    ref: str | None = None


def _refuse(repo_url: str, reason: str) -> InvalidRepoUrl:
    shown = repo_url if len(repo_url) <= 200 else repo_url[:200] + "..."
    return InvalidRepoUrl(
        f"repo_url {shown!r} is not accepted: {reason}. Accepted: {ACCEPTED_FORMS}.",
        accepted=ACCEPTED_FORMS,
    )


def _check_ref(repo_url: str, ref: str) -> str:
    if not _REF.fullmatch(ref):
        raise _refuse(repo_url, "the ref after /tree/ may only use letters, digits and . _ / + -")
    parts = ref.split("/")
    if any(part == "" for part in parts):
        raise _refuse(repo_url, "the ref after /tree/ has an empty path component")
    if any(part.startswith(".") or part.endswith(".lock") for part in parts):
        raise _refuse(repo_url, "the ref after /tree/ is not a valid git ref name")
    if ".." in ref or ref.endswith(".") or ref.startswith("-"):
        raise _refuse(repo_url, "the ref after /tree/ is not a valid git ref name")
    return ref


def parse_repo_url(repo_url: str) -> RepoTarget:
    """The repository (and ref) a GitHub URL names.

    Raises InvalidRepoUrl (422) with a message naming the accepted forms for anything else.
    Surrounding whitespace is ignored (a common copy-paste artefact); inner whitespace is not.
    """
    text = repo_url.strip()
    if not text:
        raise _refuse(repo_url, "it is empty")
    if len(text) > MAX_URL_CHARS:
        raise _refuse(repo_url, f"it is longer than {MAX_URL_CHARS} characters")
    if not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        raise _refuse(repo_url, "it contains whitespace, control or non-ASCII characters")
    match = _PREFIX.fullmatch(text)
    if match is None:
        raise _refuse(
            repo_url, "only github.com repository URLs over http(s), without user or port, are analyzed"
        )
    path = match["path"] or ""
    if any(c in path for c in "?#%\\@:;"):
        raise _refuse(
            repo_url, "query strings, fragments, escapes and the characters @ : ; \\ are not allowed"
        )
    if path.endswith("/"):
        path = path[:-1]
    segments = path.split("/")[1:] if path else []
    if len(segments) < 2 or not segments[0] or not segments[1]:
        raise _refuse(repo_url, "it must name both an owner and a repository")
    owner, repo, rest = segments[0], segments[1], segments[2:]
    if not _OWNER.fullmatch(owner) or owner.lower() in _RESERVED_OWNERS:
        raise _refuse(repo_url, f"{owner!r} is not a GitHub user or organisation name")
    if repo.lower().endswith(".git") and len(repo) > len(".git"):
        repo = repo[: -len(".git")]
    if not _REPO.fullmatch(repo):
        raise _refuse(repo_url, f"{repo!r} is not a GitHub repository name")
    if not rest:
        return RepoTarget(owner=owner, repo=repo)
    if rest[0] != "tree" or len(rest) < 2:
        raise _refuse(repo_url, "the only page accepted after OWNER/REPO is /tree/REF")
    return RepoTarget(owner=owner, repo=repo, ref=_check_ref(repo_url, "/".join(rest[1:])))
