"""The shapes of a scan (`POST /analyze/scan` and the `/analyze/scans/...` routes, the events on
`codereview.scans.<scan_id>.progress|completed|failed`, and the command line's `codereview scan`).

A scan reviews every function of a repository job (or those under `paths`, or those whose lines a
pull request adds or changes) and keeps each finding as data: rule, severity (SARIF's levels),
place, fingerprint, and the function it is in.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from review_contract.checks import RuleInfo
from review_contract.shapes import Finding, Severity

ScanState = Literal["queued", "running", "completed", "failed"]
# "checks": ruff and the type checker only (whole files at once, no model); "model": also ask the
# model about each function (through the review cache, within the scan's budget).
ScanMode = Literal["checks", "model"]

_GLOB = Annotated[str, msgspec.Meta(min_length=1, max_length=1_000)]


class ScanRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """`POST /analyze/scan`. `paths`: globs over repository paths (`src/**/*.py`), none: all.
    `pull`: review only the functions whose lines pull request N adds or changes. `max_functions`
    / `max_tokens`: the most the model may be asked in this scan (None: the analyzer's default)."""

    job_id: str
    paths: Annotated[list[_GLOB], msgspec.Meta(min_length=1, max_length=100)] | None = None
    pull: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None
    mode: ScanMode = "checks"
    max_functions: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None


class ScanStarted(msgspec.Struct, kw_only=True, frozen=True):
    scan_id: str


class ScanFinding(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A finding of a scan: a `Finding` with its file (from the repository root) and function."""

    rule: str
    message: str
    severity: Severity
    fingerprint: str
    path: str
    function: str
    line: int | None = None
    column: int | None = None

    @classmethod
    def of(cls, finding: Finding, *, path: str, function: str) -> ScanFinding:
        return cls(
            rule=finding.rule,
            message=finding.message,
            severity=finding.severity,
            fingerprint=finding.fingerprint,
            path=path,
            function=function,
            line=finding.line,
            column=finding.column,
        )


class SkippedFile(msgspec.Struct, kw_only=True, frozen=True):
    """A file the scan did not review, and why ("deleted", "not Python", "over the limits: ...")."""

    path: str
    reason: str


class ScanCounts(msgspec.Struct, kw_only=True, frozen=True):
    files: int = 0
    functions: int = 0
    findings: int = 0
    # Findings by severity (SARIF's levels).
    error: int = 0
    warning: int = 0
    note: int = 0
    skipped: int = 0


class ScanProgress(msgspec.Struct, kw_only=True, frozen=True):
    """The scan's pieces (batches of files on the work queue) done of all."""

    pieces_done: int = 0
    pieces_total: int = 0


class ScanBudget(msgspec.Struct, kw_only=True, frozen=True):
    """What the model may be asked in a "model" scan, and what it was; `exhausted`: some functions
    were left to the checks alone because the budget ran out (the status says so, never silently)."""

    max_functions: int | None = None
    max_tokens: int | None = None
    functions_asked: int = 0
    tokens_used: int = 0
    exhausted: bool = False


class ScanStatus(msgspec.Struct, kw_only=True, frozen=True):
    """`GET /analyze/scans/{scan_id}`, and the payload of every scan event."""

    scan_id: str
    job_id: str
    status: ScanState
    mode: ScanMode
    created_at: float
    updated_at: float
    paths: list[str] | None = None
    pull: int | None = None
    counts: ScanCounts = ScanCounts()
    progress: ScanProgress = ScanProgress()
    budget: ScanBudget | None = None
    # The first files skipped (the count is in `counts.skipped`).
    skipped: list[SkippedFile] = []
    # Why a failed scan failed, in our words.
    error: str | None = None


class FindingsPage(msgspec.Struct, kw_only=True, frozen=True):
    """`GET /analyze/scans/{scan_id}/findings?limit=&cursor=`: findings in a stable order (path,
    line, rule); `next_cursor` None on the last page. `rules` describes every rule on the page."""

    findings: list[ScanFinding]
    rules: dict[str, RuleInfo] = {}
    next_cursor: str | None = None
