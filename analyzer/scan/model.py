"""The messages and interfaces shared by the scan engine and the piece checker: a `Piece` (one
batch of files, the work-queue message), its `PieceResult`, and the `ModelBudget` the workers of
one scan share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec

from review_contract.checks import RuleInfo
from review_contract.scan import ScanFinding, ScanMode, ScanStatus, SkippedFile

if TYPE_CHECKING:
    from analyzer.snapshots import LoadedSnapshot


class Piece(msgspec.Struct, kw_only=True, frozen=True):
    """One batch of a scan's files: the work-queue message. `lines`: for a pull request scan, the
    lines (1-based, inclusive ranges) the pull request adds or changes in each path; None: all."""

    scan_id: str
    index: int
    job_id: str
    paths: list[str]
    mode: ScanMode = "checks"
    lines: dict[str, list[tuple[int, int]]] | None = None


class PieceResult(msgspec.Struct, kw_only=True, frozen=True):
    """What checking one piece found: files and functions checked, findings, files skipped (and
    why), the rules named by the findings, and what the model was asked."""

    files: int
    functions: int
    findings: list[ScanFinding]
    skipped: list[SkippedFile]
    rules: dict[str, RuleInfo]
    functions_asked: int = 0
    tokens_used: int = 0
    budget_exhausted: bool = False


class ModelBudget(Protocol):
    """The model budget of one scan, shared by all its workers (in KV, compare-and-set)."""

    async def take(self) -> bool:
        """Whether one more function may be asked the model (True: counted as asked)."""
        ...

    async def spend(self, tokens: int) -> None:
        """Count `tokens` the model used for this scan."""
        ...


class PieceChecker(Protocol):
    """Checks one piece of a scan against the loaded snapshot of its job."""

    async def check(
        self, piece: Piece, loaded: LoadedSnapshot, budget: ModelBudget | None
    ) -> PieceResult: ...


class PullScope(msgspec.Struct, kw_only=True, frozen=True):
    """What a pull request scan covers: the changed lines of each Python path it adds or changes,
    and the files of the pull request it cannot review (with why)."""

    lines: dict[str, list[tuple[int, int]]]
    skipped: list[SkippedFile] = []


class ScanStart(msgspec.Struct, kw_only=True, frozen=True):
    """The work-queue message that has a worker wait for the job, cut the scan and queue its pieces."""

    scan_id: str
    job_id: str
    mode: ScanMode = "checks"
    paths: list[str] | None = None
    pull: PullScope | None = None
    # How the analyzer that accepted the scan cuts it: every redelivery cuts it the same way,
    # whichever analyzer's worker takes it.
    piece_files: int
    piece_bytes: int
    max_files: int


class ScanRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A scan as the `scans` bucket keeps it under its id: the public status, and the pieces whose
    results are counted in it (so a piece stored twice is counted once)."""

    status: ScanStatus
    done: list[int] = []


class StoredPiece(msgspec.Struct, kw_only=True, frozen=True):
    """A piece's result in the `scans` bucket, its findings (sorted) in `parts` keys of their own."""

    files: int
    functions: int
    findings: int
    # How many findings each part holds, in order.
    parts: list[int]
    skipped: list[SkippedFile]
    rules: dict[str, RuleInfo]
