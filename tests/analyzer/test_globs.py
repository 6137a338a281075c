"""analyzer.globs: ruff's per-file patterns (globset's syntax and defaults) as regexes, in bounded time."""

from __future__ import annotations

import time

import pytest

from analyzer.globs import MAX_VARIANTS, GlobError, compile_glob


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        # globset's default: `*` and `?` cross `/`.
        ("tests/*", "tests/a.py", True),
        ("tests/*", "tests/sub/b.py", True),
        ("tests/*", "tests", False),
        ("tests/*", "src/tests/a.py", False),
        ("*.py", "pkg/a.py", True),
        ("?.py", "a.py", True),
        ("a?b", "a/b", True),
        # `**` as a whole component: any folders, or none.
        ("**/test_*.py", "test_a.py", True),
        ("**/test_*.py", "a/b/test_a.py", True),
        ("**/test_*.py", "a/b/tast_a.py", False),
        ("tests/**/*.py", "tests/a.py", True),
        ("tests/**/*.py", "tests/x/y/a.py", True),
        ("tests/**/*.py", "src/a.py", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**", "a/b/c", True),
        ("a/**", "a", False),
        ("**", "any/thing", True),
        ("**/**/x", "x", True),
        # `**` inside a component is `*`.
        ("a**b", "a/x/b", True),
        ("__init__.py", "__init__.py", True),
        ("__init__.py", "x__init__.py", False),
        # Alternates, classes, escapes.
        ("*.{py,pyi}", "a.pyi", True),
        ("*.{py,pyi}", "a.txt", False),
        ("{a,}b", "b", True),
        ("[!a]*", "b.py", True),
        ("[!a]*", "a.py", False),
        ("[^a]*", "a.py", False),
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[]]x", "]x", True),
        ("[-a]", "-", True),
        ("[&&]", "&", True),
        (r"\*.py", "*.py", True),
        (r"\*.py", "a.py", False),
        ("a.py", "aXpy", False),
        ("a+(b)", "a+(b)", True),
        # Case-sensitive, whole text.
        ("Tests/*", "tests/a.py", False),
        ("a", "ab", False),
    ],
)
def test_globset_semantics(pattern: str, text: str, matches: bool) -> None:
    assert (compile_glob(pattern).match(text) is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("[a", "unclosed character class"),
        ("{a,b", "unclosed alternates"),
        ("{a,{b}}", "nested alternates"),
        ("[z-a]", "invalid range z-a"),
        ("a\\", "dangling escape"),
        ("{a,b}" * 7, f"more than {MAX_VARIANTS} alternatives"),
        ("a/**/" * 7 + "b", f"more than {MAX_VARIANTS} alternatives"),
    ],
)
def test_what_globset_refuses_or_past_the_bound_raises(pattern: str, error: str) -> None:
    with pytest.raises(GlobError, match=error.replace("[", r"\[").replace("{", r"\{")):
        compile_glob(pattern)


def test_a_regex_over_the_given_size_is_refused_before_it_is_compiled() -> None:
    pattern = "{a,b,c,d}/" + "x" * 200
    assert compile_glob(pattern, max_regex_chars=1000).match("a/" + "x" * 200)
    with pytest.raises(GlobError, match="over the 100 left to compile"):
        compile_glob(pattern, max_regex_chars=100)


@pytest.mark.alone
@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("*a" * 60 + "b", "a" * 4096),
        ("*" + "a" * 200 + "b*" + "a" * 200 + "c", "a" * 4096),
        ("**/" + "*a/**/" * 2 + "x", "a/" * 2000),
        ("[a-z]*" * 50 + "!", "ab" * 2048),
    ],
)
def test_a_match_that_backtracks_badly_in_fnmatch_terms_stays_fast(pattern: str, text: str) -> None:
    # Each star before a fixed piece is atomic: linear in the text, not exponential in the stars.
    regex = compile_glob(pattern)
    started = time.perf_counter()
    assert regex.match(text) is None
    assert time.perf_counter() - started < 0.5
