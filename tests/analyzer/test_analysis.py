"""analyzer.analysis: what is sent for review, whole, dedented, and cut so that it still parses."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.analysis import CUT_MARK, source_for_review, truncate_source
from analyzer.locate import FoundFunction


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


# -- what is sent for review ---------------------------------------------------------------------


def found(source: str, indent: str = "", name: str = "m.f") -> FoundFunction:
    lines = len(source.splitlines())
    return FoundFunction(
        qualified_name=name, path="m.py", source=source, start_line=1, end_line=lines, indent=indent
    )


def test_a_method_is_sent_as_a_module_of_its_own() -> None:
    method = "@property\n    def size(self):  # why\n        return 1  # pragma: no cover"
    sent, notice = source_for_review(found(method, "    "), 1000)
    assert sent == "@property\ndef size(self):  # why\n    return 1  # pragma: no cover"
    assert notice is None
    ast.parse(sent)


def test_a_cut_inside_an_open_statement_keeps_the_statements_before_it() -> None:
    source = (
        "def f(x):\n    y = x + 1\n    return [\n" + "".join(f"        {i},\n" for i in range(500)) + "    ]"
    )
    sent, notice = source_for_review(found(source), 300)
    assert sent == f"def f(x):\n    y = x + 1\n{CUT_MARK}"
    assert len(sent) <= 300
    ast.parse(sent)
    assert notice is not None
    assert notice.startswith("This review covers only the first ")
    assert "of 504 lines of m.f" in notice


def test_a_one_line_function_cut_in_the_middle_is_sent_as_its_header() -> None:
    source = "def table(): return [" + "1, " * 5000 + "]"
    sent, notice = source_for_review(found(source), 500)
    assert sent == f"def table(): ...\n{CUT_MARK}"
    ast.parse(sent)
    assert notice is not None


def test_a_cut_with_no_header_that_parses_is_only_the_mark() -> None:
    source = "def table(values=[" + "1, " * 5000 + "]): pass"
    sent, _ = source_for_review(found(source), 500)
    assert sent == CUT_MARK


def test_a_cut_that_parses_is_sent_as_cut() -> None:
    source = "def f():\n" + "".join(f"    a{i} = {i}\n" for i in range(100)) + "    return 0"
    sent, notice = source_for_review(found(source), 200)
    assert source.startswith(sent)
    assert CUT_MARK not in sent
    assert notice is not None


@given(st.integers(min_value=200, max_value=2000), st.integers(min_value=0, max_value=3))
def test_every_cut_parses_and_fits(max_chars: int, shape: int) -> None:
    sources = [
        "def f(x):\n    return {\n" + "".join(f"        'k{i}': {i},\n" for i in range(300)) + "    }",
        'def g():\n    """Doc\n' + "    text line\n" * 300 + '    """\n    return 1',
        "class C:\n    def m(self):\n        if self:\n"
        + "            x = (1 +\n                 2)\n" * 200,
        "async def h(): return " + " + ".join(str(i) for i in range(2000)),
    ]
    sent, notice = source_for_review(found(sources[shape]), max_chars)
    assert len(sent) <= max_chars
    assert notice is not None
    ast.parse(sent)
