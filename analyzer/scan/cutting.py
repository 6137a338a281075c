"""Which files of a snapshot a scan covers, and how they are cut into pieces."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from analyzer.errors import BadInput
from analyzer.globs import GlobError, compile_glob
from analyzer.scan.model import PullScope
from review_contract.scan import SkippedFile

# The regexes of all `paths` globs of one scan at most, in characters: compiling takes about
# 4 us a character, so a hostile list costs a request under 0.1 s of the event loop.
_GLOB_REGEX_CHARS = 20_000


class InvalidGlob(BadInput):
    """A `paths` pattern that is not a glob (422)."""


def compile_paths(globs: Sequence[str] | None) -> list[re.Pattern[str]] | None:
    """The `paths` globs compiled (ruff's globset syntax: `**` recursive, `*` also matches `/`).
    Raises InvalidGlob (422) naming the pattern."""
    if globs is None:
        return None
    compiled = []
    left = _GLOB_REGEX_CHARS
    for glob in globs:
        try:
            pattern = compile_glob(glob, left)
        except GlobError as exc:
            raise InvalidGlob(f"paths: {glob[:200]!r} refused: {exc}", glob=glob[:200]) from exc
        left -= len(pattern.pattern)
        compiled.append(pattern)
    return compiled


def select(
    files: Mapping[str, bytes],
    globs: Sequence[str] | None,
    pull: PullScope | None = None,
    snapshot_skipped: Mapping[str, str] | None = None,
) -> tuple[list[str], list[SkippedFile]]:
    """The `.py` paths of a snapshot the scan covers, sorted, and the files it leaves out with why:
    only those matching one of `globs` (None: all) and, for a pull request, only those it changes
    (a changed file missing from the snapshot is skipped, with the fetcher's reason if it gave one)."""
    patterns = compile_paths(globs)
    skipped = list(pull.skipped) if pull is not None else []
    wanted = files.keys() if pull is None else pull.lines.keys()
    chosen = []
    for path in sorted(wanted):
        if patterns is not None and not any(pattern.match(path) for pattern in patterns):
            continue
        if path not in files:
            reason = (snapshot_skipped or {}).get(path, "not in the snapshot of the head commit")
            skipped.append(SkippedFile(path=path, reason=reason))
        elif path.endswith(".py"):
            chosen.append(path)
    if pull is None:  # what the fetcher left out of the snapshot (too large, unsafe path, ...)
        for path, reason in sorted((snapshot_skipped or {}).items()):
            if path.endswith(".py") and (patterns is None or any(p.match(path) for p in patterns)):
                skipped.append(SkippedFile(path=path, reason=reason))
    return chosen, skipped


def cut(paths: Sequence[str], sizes: Mapping[str, int], *, max_files: int, max_bytes: int) -> list[list[str]]:
    """`paths`, in order, cut into pieces of at most `max_files` files and `max_bytes` bytes (a file
    larger than `max_bytes` is a piece of its own)."""
    pieces: list[list[str]] = []
    size = 0
    for path in paths:
        length = sizes[path]
        if not pieces or len(pieces[-1]) >= max_files or (pieces[-1] and size + length > max_bytes):
            pieces.append([])
            size = 0
        pieces[-1].append(path)
        size += length
    return pieces
