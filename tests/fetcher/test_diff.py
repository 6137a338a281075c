"""fetcher.diff: the lines a patch adds, exact on real diffs and bounded on hostile ones."""

from __future__ import annotations

import difflib
import itertools
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fetcher.diff import MAX_LINE, MAX_RANGES, PatchError, TooManyRangesError, added_lines


def test_added_and_changed_lines_are_the_head_commits_new_lines() -> None:
    patch = (
        "@@ -1,5 +1,6 @@ def f():\n"
        " a\n"
        "-b\n"
        "+B\n"  # changed: line 2
        " c\n"
        "+d\n"  # added: line 4
        " e\n"
        " f\n"
        "@@ -20,3 +21,2 @@ class C:\n"
        " x\n"
        "-y\n"  # removed only: no new line
        " z"
    )
    assert added_lines(patch) == [(2, 2), (4, 4)]


def test_a_new_file_is_all_added_and_touching_ranges_merge() -> None:
    assert added_lines("@@ -0,0 +1,3 @@\n+a\n+b\n+c") == [(1, 3)]
    # Two hunks whose added lines touch are one range.
    assert added_lines("@@ -1 +1,2 @@\n+a\n x\n@@ -5 +6,2 @@\n x\n+b\n") == [(1, 1), (7, 7)]
    assert added_lines("@@ -1,0 +2,2 @@\n+a\n+b\n@@ -1,0 +4 @@\n+c") == [(2, 4)]


def test_no_newline_markers_empty_context_lines_and_a_final_newline_are_read() -> None:
    patch = "@@ -1,2 +1,3 @@\n a\n\n+b\n\\ No newline at end of file\n"
    assert added_lines(patch) == [(3, 3)]
    assert added_lines("@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n\\ No newline at end of file") == [
        (1, 1)
    ]


def test_a_patch_that_only_removes_or_is_empty_adds_nothing() -> None:
    assert added_lines("@@ -1,3 +0,0 @@\n-a\n-b\n-c") == []
    assert added_lines("") == []


def test_crlf_files_keep_their_carriage_returns_inside_lines() -> None:
    assert added_lines("@@ -1,2 +1,2 @@\r\n a\r\n-b\r\n+c\r") == [(2, 2)]


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ("diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b", "line 1 is not a hunk header"),
        ("@@ garbage @@\n+a", "line 1 is not a hunk header"),
        ("@@ -1 +1 @@\n+a\n+b", "line 3: more added lines"),
        ("@@ -1 +1 @@\n-a\n-b", "line 3: more removed lines"),
        ("@@ -1,2 +1 @@\n a\n b", "line 3: more context lines"),
        ("@@ -1,3 +1,3 @@\n a\n?b\n c", "line 3 is neither context, added nor removed"),
        ("@@ -1,3 +1,3 @@\n a\n@@ -5 +5 @@\n a", "line 3 is neither context"),
        ("@@ -1,1000000000 +1,1000000000 @@\n a\n b", "ends inside a hunk"),
        ("@@ -1 +1 @@", "ends inside a hunk (1 old and 1 new lines missing)"),
        ("@@ -1 +2147483647,2 @@\n-a\n+b\n+c", f"ends past line {MAX_LINE}"),
        ("@@ -1 +0,1 @@\n-a\n+b", "start at line 0"),
        ("@@ -1 +" + "9" * 100_000 + " @@\n+a", "line 1 is not a hunk header"),
    ],
)
def test_a_bogus_patch_is_refused_saying_where(patch: str, says: str) -> None:
    with pytest.raises(PatchError) as raised:
        added_lines(patch)
    assert says in str(raised.value)


def test_more_separate_ranges_than_the_bound_are_refused_as_they_come() -> None:
    alternating = "@@ -1,{n} +1,{m} @@\n" + "+a\n x\n" * (MAX_RANGES + 1)
    patch = alternating.format(n=MAX_RANGES + 1, m=2 * (MAX_RANGES + 1))
    with pytest.raises(TooManyRangesError, match=f"more than {MAX_RANGES} separate places"):
        added_lines(patch)
    assert len(added_lines(patch, max_ranges=MAX_RANGES + 1)) == MAX_RANGES + 1


def test_a_huge_hunk_costs_time_and_memory_linear_in_the_patch_only() -> None:
    lines = 200_000
    patch = f"@@ -0,0 +1,{lines} @@\n" + "+x = 1\n" * lines
    started = time.perf_counter()
    assert added_lines(patch) == [(1, lines)]
    # About 0.2 s on a 2-core machine; the bound leaves room for a loaded one.
    assert time.perf_counter() - started < 5.0
    tracemalloc.start()
    try:
        added_lines(patch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The split lines are the memory (about 60 bytes each: 12 MB); one range is kept, not 200,000.
    assert peak < 30 * 1024 * 1024, peak


# -- properties ----------------------------------------------------------------------------------

_LINE_TEXT = st.text(st.characters(exclude_characters="\n", exclude_categories=["Cs"]), max_size=8)


@given(
    before=st.lists(st.sampled_from(["a", "b", "c", "", "  d", "e\r"]), max_size=30),
    after=st.lists(st.sampled_from(["a", "b", "c", "", "  d", "f", "e\r"]), max_size=30),
    context=st.integers(min_value=0, max_value=3),
)
@settings(max_examples=300, deadline=None)
def test_on_real_diffs_the_added_lines_are_exactly_the_new_files_inserted_and_replaced_lines(
    before: list[str], after: list[str], context: int
) -> None:
    diff = list(difflib.unified_diff(before, after, lineterm="", n=context))
    # GitHub's patch is the hunks without the ---/+++ header.
    patch = "\n".join(diff[2:])
    expected: set[int] = set()
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag in ("insert", "replace"):
            expected.update(range(j1 + 1, j2 + 1))
    got = {line for start, end in added_lines(patch) for line in range(start, end + 1)}
    assert got == expected


@given(
    st.lists(
        st.one_of(
            st.sampled_from(["@@ -1 +1 @@", "@@ -1,2 +1,2 @@", "@@ -0,0 +3,2 @@", "@@ -9,1 +2,0 @@", "\\ x"]),
            st.builds(lambda m, t: m + t, st.sampled_from(["+", "-", " ", "", "@", "?"]), _LINE_TEXT),
            st.builds(
                lambda a, b, c, d: f"@@ -{a},{b} +{c},{d} @@",
                *(st.integers(min_value=0, max_value=2**40) for _ in range(4)),
            ),
        ),
        max_size=40,
    ).map("\n".join)
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_gives_well_formed_ranges_or_a_patch_error(patch: str) -> None:
    try:
        ranges = added_lines(patch, max_ranges=5)
    except PatchError:
        return
    assert len(ranges) <= 5
    for start, end in ranges:
        assert 1 <= start <= end <= MAX_LINE
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end + 1 < start
