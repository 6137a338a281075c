"""The shapes of a review in context (analyzer -> gateway) and of its findings (gateway -> callers)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec

# A module larger than this is not sent: the function is then checked on its own, as /analyze does.
MAX_MODULE_BYTES = 1_000_000
# What the model is told about the function's surroundings (signatures, attributes, constants).
MAX_CONTEXT_CHARS = 16_000
# The type checker's findings sent for one function: more than this is not a review but a flood.
MAX_TYPE_FINDINGS = 50

Severity = Literal["error", "warning", "note"]
# SARIF's levels, most severe first.
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "note")

_RULE = Annotated[str, msgspec.Meta(max_length=100)]
_TEXT = Annotated[str, msgspec.Meta(max_length=2_000)]
_PATH = Annotated[str, msgspec.Meta(max_length=4_096)]
_LINE = Annotated[int, msgspec.Meta(ge=1)]
_SELECTORS = Annotated[list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=2_000)]


class LintSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The repository's ruff configuration for one file, resolved by the analyzer.

    `select` None: the repository selects nothing itself (ruff's default or ours applies).
    `ignore` already holds the per-file ignores that match the file. `source` names the
    configuration file it came from, for the logs.
    """

    source: _PATH
    select: _SELECTORS | None = None
    extend_select: _SELECTORS = []
    ignore: _SELECTORS = []
    line_length: Annotated[int, msgspec.Meta(ge=1, le=320)] | None = None
    docstring_convention: Literal["google", "numpy", "pep257"] | None = None
    # The Python the repository targets ("py39"), from `target-version` or `requires-python`:
    # rules that suggest newer syntax judge by it. None: ruff's default.
    target_version: Annotated[str, msgspec.Meta(pattern=r"^py3[0-9]{1,2}$")] | None = None
    # ruff's preview rules, as the repository says (off unless it turns them on).
    preview: bool = False


class TypeFinding(msgspec.Struct, kw_only=True, frozen=True):
    """One finding of the type checker, at a line of the module (1-based), as it said it."""

    rule: _RULE
    message: _TEXT
    line: _LINE
    column: _LINE = 1


class ReviewContext(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Where the reviewed function stands in its repository.

    `module` is the whole file as text, and the function's lines in it are `start_line` to
    `end_line` (1-based, inclusive); the function code of the chat message is those lines,
    dedented, perhaps cut. `lint` None: the repository has no ruff configuration for the file.
    `types` None: the type check did not run (failed, over budget, not finished): the review
    then says nothing about types and is not cached. `uses` is what the function uses from its
    repository, for the model only, never reviewed.
    """

    path: _PATH
    module: Annotated[str, msgspec.Meta(max_length=MAX_MODULE_BYTES)]
    start_line: _LINE
    end_line: _LINE
    lint: LintSettings | None = None
    types: Annotated[list[TypeFinding], msgspec.Meta(max_length=MAX_TYPE_FINDINGS)] | None = None
    uses: Annotated[str, msgspec.Meta(max_length=MAX_CONTEXT_CHARS)] = ""


class Finding(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One finding as data.

    `rule`: ruff's code ("B006"), the type checker's rule prefixed `ty/` ("ty/missing-argument"),
    or `model` for the model's own suggestions. `line` is in the repository file when the review
    had its context, else in the function code sent; None for a finding about the whole function.
    `fingerprint` is stable across runs and across edits elsewhere in the file (see `fingerprint`).
    """

    rule: str
    message: str
    severity: Severity
    fingerprint: str
    path: str | None = None
    line: int | None = None
    column: int | None = None


class ReviewContent(msgspec.Struct, kw_only=True, frozen=True):
    """What the `code-review` model puts in `choices[0].message.content`, as JSON."""

    suggestions: list[str]
    findings: list[Finding] = []


def fingerprint(rule: str, path: str | None, function: str, line_text: str, occurrence: int = 0) -> str:
    """A finding's identity: its rule, file, function and the text of its line, not the line number.

    So a finding keeps its fingerprint when code above it moves; `occurrence` tells apart the same
    rule on identical lines of one function. 16 hex digits of SHA-256.
    """
    key = "\0".join((rule, path or "", function, " ".join(line_text.split()), str(occurrence)))
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
