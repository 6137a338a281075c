"""analyzer.analysis: what is sent for review when a function is longer than the budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.analysis import truncate_source


def test_truncate_keeps_short_sources_whole() -> None:
    assert truncate_source("def f():\n    pass", 100) == ("def f():\n    pass", False)
    assert truncate_source("abc", 3) == ("abc", False)


def test_truncate_cuts_after_a_whole_line() -> None:
    source = "def f():\n    a = 1\n    b = 2\n    return a + b"
    assert truncate_source(source, 25) == ("def f():\n    a = 1", True)
    assert truncate_source(source, len(source) - 1) == ("def f():\n    a = 1\n    b = 2", True)


def test_truncate_crlf_and_an_overlong_first_line() -> None:
    assert truncate_source("def f():\r\n    return 1\r\n", 14) == ("def f():", True)
    assert truncate_source("x" * 50 + "\nmore", 10) == ("x" * 10, True)


def test_truncate_needs_a_positive_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        truncate_source("abc", 0)


@given(st.text(alphabet="ab \t\r\n", max_size=200), st.integers(min_value=1, max_value=250))
def test_truncate_properties(source: str, max_chars: int) -> None:
    cut, was_cut = truncate_source(source, max_chars)
    assert was_cut == (len(source) > max_chars)
    assert source.startswith(cut)
    assert len(cut) <= max_chars
    if was_cut and any(end in source[:max_chars][1:] for end in "\r\n"):
        # Cut after a whole line: what follows in the source starts with a line end.
        assert source[len(cut)] in "\r\n"
