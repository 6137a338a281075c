"""The lines a unified diff adds to the new file, read from a patch as GitHub's pull request files
API gives it (`patch`: one file's hunks, without the `diff --git` / `---` / `+++` header).

Each hunk is `@@ -a,b +c,d @@ section`, then exactly b old and d new lines: ' ' context (in both),
'+' added (new only), '-' removed (old only), and `\\ No newline at end of file` markers. The added
lines are the head commit's lines a pull request adds or changes (a changed line is removed, then
added); a hunk that only removes lines adds none, as reviewdog's `added` filter and GitHub's
"changed lines" count them.

The patch comes from the network, so it is read as hostile: the hunk headers' counts must match
their bodies exactly (a header announcing a billion lines over three lines is refused when the
patch ends, having cost three lines of work), line numbers are bounded, and the ranges kept are
bounded, so time and memory stay linear in the patch's length whatever it says.
"""

from __future__ import annotations

import re

# The largest line number believed: past it a header is bogus (no file has two billion lines).
MAX_LINE = 2**31 - 1
# Separate ranges of added lines kept for one file: a patch that alternates added and context
# lines past this describes more places than a review of "the changed functions" can use.
MAX_RANGES = 10_000

# Counts of at most 10 digits: `int()` of a megabyte of digits is slow, and no count needs more.
_HUNK = re.compile(r"@@ -(\d{1,10})(?:,(\d{1,10}))? \+(\d{1,10})(?:,(\d{1,10}))? @@")


class PatchError(ValueError):
    """The patch is not a unified diff whose line numbers can be trusted; `str()` says where."""


class TooManyRangesError(PatchError):
    """The patch adds lines in more than `MAX_RANGES` separate places."""


def added_lines(patch: str, *, max_ranges: int = MAX_RANGES) -> list[tuple[int, int]]:
    """The new file's lines that `patch` adds, as sorted, merged, inclusive (start, end) ranges.

    An empty patch adds nothing. Raises PatchError when a line is neither a hunk header nor one
    of a hunk's lines, a hunk's body does not match its header's counts, or a line number is past
    MAX_LINE; TooManyRangesError past `max_ranges` separate ranges (checked as they are found, so
    the work stops there).
    """
    ranges: list[list[int]] = []
    old_left = new_left = 0
    line = 0  # the new file's number of the next context or added line
    lines = patch.split("\n")
    if lines[-1] == "":
        # The patch's own final newline; an empty context line inside a hunk is written " ".
        lines.pop()
    for number, text in enumerate(lines, 1):
        if old_left == 0 and new_left == 0:
            if text.startswith("\\"):
                continue
            header = _HUNK.match(text)
            if header is None:
                raise PatchError(f"line {number} is not a hunk header (@@ -a,b +c,d @@)")
            old_left = _count(header[2])
            new_start, new_left = int(header[3]), _count(header[4])
            if new_left and new_start < 1:
                raise PatchError(f"line {number}: the hunk's new lines start at line 0")
            if new_start + new_left - 1 > MAX_LINE:
                raise PatchError(f"line {number}: the hunk ends past line {MAX_LINE}")
            line = new_start
            continue
        marker = text[:1]
        if marker == "+":
            if new_left == 0:
                raise PatchError(f"line {number}: more added lines than its hunk header counts")
            new_left -= 1
            if ranges and ranges[-1][1] == line - 1:
                ranges[-1][1] = line
            else:
                if len(ranges) >= max_ranges:
                    raise TooManyRangesError(f"lines added in more than {max_ranges} separate places")
                ranges.append([line, line])
            line += 1
        elif marker == "-":
            if old_left == 0:
                raise PatchError(f"line {number}: more removed lines than its hunk header counts")
            old_left -= 1
        elif marker in (" ", ""):
            # "" too: some tools strip the space of an empty context line.
            if old_left == 0 or new_left == 0:
                raise PatchError(f"line {number}: more context lines than its hunk header counts")
            old_left -= 1
            new_left -= 1
            line += 1
        elif marker != "\\":
            raise PatchError(f"line {number} is neither context, added nor removed")
    if old_left or new_left:
        raise PatchError(f"the patch ends inside a hunk ({old_left} old and {new_left} new lines missing)")
    return _merged(ranges)


def _count(digits: str | None) -> int:
    # A header's count may be left out when it is 1 ("@@ -3 +3 @@").
    return 1 if digits is None else int(digits)


def _merged(ranges: list[list[int]]) -> list[tuple[int, int]]:
    """Sorted, with touching or overlapping ranges joined (hunks out of order or overlapping are
    not what git writes, but the answer stays well formed whatever the patch says)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
