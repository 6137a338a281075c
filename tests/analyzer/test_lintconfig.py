"""analyzer.lintconfig: the repository's ruff configuration for one file, as ruff finds and merges it.

Besides the rules one by one, two tests hold the resolution against ruff itself (a real ruff on
real files): which files a per-file pattern covers, and that ruff run with the resolved
LintSettings alone reports what ruff reports with the repository's own configuration files.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from analyzer.lintconfig import (
    MAX_CONFIG_BYTES,
    MAX_EXTEND_DEPTH,
    MAX_PARSED_BYTES,
    MAX_PATTERNS,
    MAX_SELECTORS,
    MAX_TOML_MARKS,
    LintConfigs,
    lint_settings_for,
)
from review_contract import LintSettings

LOGGER = "analyzer.lintconfig"
RUFF: str = importlib.import_module("ruff").find_ruff_bin()


@contextmanager
def captured() -> Iterator[list[str]]:
    """The WARNING messages analyzer.lintconfig logs inside the block, as they would be printed."""
    lines: list[str] = []
    handler = _ListHandler(lines)
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def settings(configs: dict[str, bytes], path: str) -> LintSettings | None:
    return LintConfigs(configs).for_path(path)


ROOT_PYPROJECT = b"""
[project]
name = "demo"

[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F", "B"]
ignore = ["E501"]

[tool.ruff.lint.per-file-ignores]
"tests/*" = ["B011"]
"__init__.py" = ["F401"]

[tool.ruff.lint.pydocstyle]
convention = "google"
"""


# -- which file applies ---------------------------------------------------------------------------


def test_the_root_pyproject_applies_to_every_file_below_it() -> None:
    for path in ("a.py", "pkg/sub/deep.py"):
        assert settings({"pyproject.toml": ROOT_PYPROJECT}, path) == LintSettings(
            source="pyproject.toml",
            select=["E", "F", "B"],
            ignore=["E501"],
            line_length=100,
            docstring_convention="google",
        )


def test_no_configuration_is_none() -> None:
    assert settings({}, "a.py") is None
    assert lint_settings_for({"other/ruff.toml": b"line-length = 90\n"}, "pkg/a.py") is None


def test_in_one_folder_dot_ruff_toml_beats_ruff_toml_beats_pyproject() -> None:
    configs = {
        "pyproject.toml": b"[tool.ruff]\nline-length = 70\n",
        "ruff.toml": b"line-length = 80\n",
        ".ruff.toml": b"line-length = 90\n",
    }
    found = settings(configs, "a.py")
    assert found is not None
    assert (found.source, found.line_length) == (".ruff.toml", 90)
    del configs[".ruff.toml"]
    found = settings(configs, "a.py")
    assert found is not None
    assert (found.source, found.line_length) == ("ruff.toml", 80)


def test_a_pyproject_without_tool_ruff_is_passed_over() -> None:
    configs = {
        "pyproject.toml": ROOT_PYPROJECT,
        "pkg/pyproject.toml": b'[project]\nname = "pkg"\n[tool.black]\nline-length = 60\n',
        # It says ruff, but has no [tool.ruff] table.
        "pkg/sub/pyproject.toml": b'[tool.other]\nruff = "no"\n',
    }
    found = settings(configs, "pkg/sub/m.py")
    assert found is not None
    assert (found.source, found.line_length) == ("pyproject.toml", 100)


def test_a_nested_package_with_its_own_ruff_toml_overrides_the_root_pyproject() -> None:
    configs = {
        "pyproject.toml": ROOT_PYPROJECT,
        "plugins/ruff.toml": b'line-length = 120\n[lint]\nselect = ["D"]\n',
    }
    # Nothing of the root's applies: the closest file is the whole configuration (no extend).
    assert settings(configs, "plugins/p/m.py") == LintSettings(
        source="plugins/ruff.toml", select=["D"], line_length=120
    )
    found = settings(configs, "core/m.py")
    assert found is not None
    assert found.source == "pyproject.toml"


def test_ruff_toml_has_no_tool_ruff_prefix() -> None:
    found = settings({"ruff.toml": b'[tool.ruff.lint]\nselect = ["E"]\n'}, "a.py")
    assert found == LintSettings(source="ruff.toml")


def test_top_level_lint_options_are_read_and_the_lint_table_wins() -> None:
    # ruff's deprecated form: select and friends at the top level.
    configs = {
        "pyproject.toml": b"""
[tool.ruff]
select = ["E"]
extend-select = ["W"]
ignore = ["E501"]
extend-ignore = ["E741"]
[tool.ruff.pydocstyle]
convention = "numpy"
[tool.ruff.per-file-ignores]
"tests/*" = ["E402"]
"""
    }
    assert settings(configs, "tests/t.py") == LintSettings(
        source="pyproject.toml",
        select=["E"],
        extend_select=["W"],
        ignore=["E501", "E741", "E402"],
        docstring_convention="numpy",
    )
    configs["pyproject.toml"] += (
        b'[tool.ruff.lint]\nselect = ["F"]\n[tool.ruff.lint.pydocstyle]\nconvention = "pep257"\n'
    )
    found = settings(configs, "a.py")
    assert found is not None
    assert (found.select, found.extend_select, found.docstring_convention) == (["F"], ["W"], "pep257")


# -- extend ---------------------------------------------------------------------------------------


def test_extend_merges_as_ruff_does_relative_to_the_file_that_says_it() -> None:
    configs = {
        "pyproject.toml": ROOT_PYPROJECT,
        "pkg/ruff.toml": b'extend = "../pyproject.toml"\n[lint]\nextend-select = ["UP"]\nignore = ["B"]\n',
        "pkg/sub/.ruff.toml": b'extend = "./../ruff.toml"\nline-length = 88\n',
    }
    assert settings(configs, "pkg/sub/tests/t.py") == LintSettings(
        source="pkg/sub/.ruff.toml",
        select=["E", "F"],  # B dropped: a later ignore wins over an earlier select
        extend_select=["UP"],
        ignore=["E501", "B"],
        line_length=88,
        docstring_convention="google",
    )
    # The base's per-file patterns are relative to the base's folder: `tests/*` is the root's.
    found = settings(configs, "tests/t.py")
    assert found is not None
    assert found.ignore == ["E501", "B011"]


def test_a_later_select_starts_afresh_and_a_later_extend_select_beats_an_earlier_ignore() -> None:
    configs = {
        "ruff.toml": b'[lint]\nselect = ["E", "F"]\nignore = ["E501", "F401"]\n',
        "a/ruff.toml": b'extend = "../ruff.toml"\n[lint]\nselect = ["B"]\n',
        "b/ruff.toml": b'extend = "../ruff.toml"\n[lint]\nextend-select = ["E501", "F4"]\n',
    }
    assert settings(configs, "a/m.py") == LintSettings(source="a/ruff.toml", select=["B"])
    assert settings(configs, "b/m.py") == LintSettings(
        source="b/ruff.toml", select=["E", "F"], extend_select=["E501", "F4"]
    )


@pytest.mark.parametrize(
    ("extend", "why"),
    [
        ("/etc/passwd", "is an absolute path, outside the repository"),
        ("~/.config/ruff/ruff.toml", "is in a home folder, outside the repository"),
        ("$HOME/ruff.toml", "names an environment variable, never read"),
        ("../../../etc/ruff.toml", "leaves the repository"),
        ("../base.toml", "is not among the repository's configuration files (only ruff's are kept)"),
        ("", "is empty"),
    ],
)
def test_an_extend_outside_the_snapshot_stops_the_chain_and_what_was_read_counts(
    extend: str, why: str
) -> None:
    configs = {"pkg/ruff.toml": f'extend = "{extend}"\nline-length = 99\n'.encode()}
    lint = LintConfigs(configs)

    with captured() as lines:
        assert lint.for_path("pkg/a.py") == LintSettings(source="pkg/ruff.toml", line_length=99)
        assert lint.for_path("pkg/b.py") is not None

    assert lines == [
        f"the lint configuration 'pkg/ruff.toml': extends {extend!r}, which {why}: read up to there"
    ]


def test_a_cycle_is_logged_and_the_files_read_count() -> None:
    configs = {
        "a/ruff.toml": b'extend = "../b/ruff.toml"\nline-length = 90\n',
        "b/ruff.toml": b'extend = "../a/ruff.toml"\n[lint]\nselect = ["E"]\n',
    }
    with captured() as lines:
        found = settings(configs, "a/m.py")
    assert found == LintSettings(source="a/ruff.toml", select=["E"], line_length=90)
    assert lines == [
        "the lint configuration 'b/ruff.toml': extends '../a/ruff.toml', a cycle: "
        "'a/ruff.toml' extends 'b/ruff.toml' extends 'a/ruff.toml': read up to there"
    ]


def test_an_extend_chain_stops_past_its_depth() -> None:
    # c0 extends c1 extends ... c14; each sets one rule.
    configs = {
        f"c{i}/ruff.toml": f'extend = "../c{i + 1}/ruff.toml"\n[lint]\nextend-select = ["E{i}"]\n'.encode()
        for i in range(15)
    }
    with captured() as lines:
        found = settings(configs, "c0/m.py")
    assert found is not None
    assert found.extend_select == [f"E{i}" for i in range(MAX_EXTEND_DEPTH, -1, -1)]
    assert lines == [
        f"the lint configuration 'c{MAX_EXTEND_DEPTH}/ruff.toml': "
        f"extends '../c{MAX_EXTEND_DEPTH + 1}/ruff.toml', past {MAX_EXTEND_DEPTH} extends: read up to there"
    ]


def test_an_extended_file_that_cannot_be_used_makes_the_result_none() -> None:
    configs = {"ruff.toml": b"line-length = [\n", "pkg/ruff.toml": b'extend = "../ruff.toml"\n'}
    with captured() as lines:
        assert settings(configs, "pkg/m.py") is None
    assert len(lines) == 2
    assert lines[0].startswith("the lint configuration 'ruff.toml': not used: not valid TOML: ")
    assert (
        lines[1]
        == "the lint configuration 'pkg/ruff.toml': not used: it extends 'ruff.toml', which cannot be used"
    )


# -- per-file ignores -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "ignored", "kept"),
    [
        ("tests/*", ["tests/t.py", "tests/sub/t.py"], ["t.py", "src/tests/t.py"]),
        ("tests/**/*.py", ["tests/t.py", "tests/sub/t.py"], ["src/tests/t.py"]),
        ("__init__.py", ["__init__.py", "pkg/__init__.py"], ["pkg/init.py"]),
        ("**/test_*.py", ["test_a.py", "pkg/tests/test_a.py"], ["pkg/a_test.py"]),
        ("!src/**", ["tests/t.py", "t.py"], ["src/m.py"]),
        ("../other/*", [], ["pkg/m.py", "other/m.py"]),
    ],
)
def test_per_file_ignores_match_the_path_from_the_config_folder_or_the_name(
    pattern: str, ignored: list[str], kept: list[str]
) -> None:
    lint = LintConfigs({"ruff.toml": f'[lint.per-file-ignores]\n"{pattern}" = ["S101"]\n'.encode()})
    for path in ignored:
        found = lint.for_path(path)
        assert found is not None
        assert found.ignore == ["S101"], path
    for path in kept:
        found = lint.for_path(path)
        assert found is not None
        assert found.ignore == [], path


def test_per_file_patterns_are_relative_to_their_configuration_file() -> None:
    configs = {"pkg/ruff.toml": b'[lint.per-file-ignores]\n"tests/*" = ["S101"]\n"../pkg/x.py" = ["E"]\n'}
    assert settings(configs, "pkg/tests/t.py") == LintSettings(source="pkg/ruff.toml", ignore=["S101"])
    assert settings(configs, "pkg/x.py") == LintSettings(source="pkg/ruff.toml", ignore=["E"])


def test_extend_per_file_ignores_add_to_the_closest_per_file_ignores() -> None:
    configs = {
        "ruff.toml": b'[lint.per-file-ignores]\n"tests/*" = ["S101"]\n"docs/*" = ["D"]\n',
        "pkg/ruff.toml": b'extend = "../ruff.toml"\n[lint.extend-per-file-ignores]\n"tests/*" = ["ARG"]\n',
        "app/ruff.toml": b'extend = "../ruff.toml"\n[lint.per-file-ignores]\n"tests/*" = ["T20"]\n',
    }
    # The base's own `tests/*` is the root's folder; pkg's `tests/*` is pkg's.
    assert settings(configs, "pkg/tests/t.py") == LintSettings(source="pkg/ruff.toml", ignore=["ARG"])
    found = settings(configs, "pkg/docs/conf.py")
    assert found is not None
    assert found.ignore == []
    # app's per-file-ignores replace the base's.
    assert settings(configs, "app/tests/t.py") == LintSettings(source="app/ruff.toml", ignore=["T20"])


def test_a_per_file_ignore_wins_over_a_more_specific_select() -> None:
    configs = {"ruff.toml": b'[lint]\nselect = ["E501", "F"]\n[lint.per-file-ignores]\n"tests/*" = ["E"]\n'}
    assert settings(configs, "tests/t.py") == LintSettings(source="ruff.toml", select=["F"], ignore=["E"])


# -- what is read ---------------------------------------------------------------------------------


def test_line_length_and_docstring_convention_are_read() -> None:
    found = settings({"ruff.toml": b'line-length = 79\n[lint.pydocstyle]\nconvention = "numpy"\n'}, "a.py")
    assert found == LintSettings(source="ruff.toml", line_length=79, docstring_convention="numpy")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'[lint]\nselect = "E501"\n', "`select` is not a list"),
        (b"[lint]\nselect = [1]\n", "`select` holds 1, which is not a rule code"),
        (b'[lint]\nignore = ["E501 --fix"]\n', "`ignore` holds 'E501 --fix', which is not a rule code"),
        (b'[lint]\nextend-select = ["e501"]\n', "`extend-select` holds 'e501', which is not a rule code"),
        (b'line-length = "100"\n', "`line-length` is '100', not a whole number from 1 to 320"),
        (b"line-length = 0\n", "`line-length` is 0, not a whole number from 1 to 320"),
        (b"line-length = 321\n", "`line-length` is 321, not a whole number from 1 to 320"),
        (b"line-length = true\n", "`line-length` is True, not a whole number from 1 to 320"),
        (
            b'[lint.pydocstyle]\nconvention = "pep8"\n',
            "`pydocstyle.convention` is 'pep8', not one of google, numpy, pep257",
        ),
        (b"lint = 1\n", "`lint` is not a table"),
        (b"extend = 1\n", "`extend` is not a string"),
        (b'[lint]\nper-file-ignores = ["tests/*"]\n', "`per-file-ignores` is not a table"),
        (
            b'[lint.per-file-ignores]\n"[a" = ["E"]\n',
            "`per-file-ignores` pattern '[a': unclosed character class",
        ),
        (b'[lint.per-file-ignores]\n"a" = "E"\n', "`per-file-ignores.'a'` is not a list"),
        (b"a = \xff\n", "not UTF-8 (invalid start byte at byte 4)"),
    ],
)
def test_a_value_of_the_wrong_type_makes_the_result_none_logged_once(text: bytes, reason: str) -> None:
    lint = LintConfigs({"ruff.toml": text})
    with captured() as lines:
        assert lint.for_path("a.py") is None
        assert lint.for_path("b/c.py") is None
    assert lines == [f"the lint configuration 'ruff.toml': not used: {reason}"]


def test_invalid_toml_is_none_and_one_log_line() -> None:
    lint = LintConfigs({"pyproject.toml": b"[tool.ruff\nselect = [\n"})
    with captured() as lines:
        assert lint.for_path("a.py") is None
        assert lint.for_path("pkg/a.py") is None
    assert len(lines) == 1
    assert lines[0].startswith("the lint configuration 'pyproject.toml': not used: not valid TOML: ")


def test_the_selector_bound_is_the_contracts() -> None:
    most = msgspec.json.encode({"source": "ruff.toml", "ignore": ["E"] * MAX_SELECTORS})
    assert len(msgspec.json.decode(most, type=LintSettings).ignore) == MAX_SELECTORS
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            msgspec.json.encode({"source": "ruff.toml", "ignore": ["E"] * (MAX_SELECTORS + 1)}),
            type=LintSettings,
        )


def test_more_selectors_than_lint_settings_allows_is_none() -> None:
    over = ", ".join(['"E1"'] * (MAX_SELECTORS + 1))
    with captured() as lines:
        assert settings({"ruff.toml": f"[lint]\nselect = [{over}]\n".encode()}, "a.py") is None
    assert lines == [
        f"the lint configuration 'ruff.toml': not used: "
        f"`select` has {MAX_SELECTORS + 1} selectors, over the {MAX_SELECTORS} read"
    ]
    # Within each file but over the bound once merged: refused when merged, logged once.
    half = ", ".join(f'"E{i}"' for i in range(MAX_SELECTORS // 2 + 1))
    other_half = half.replace("E", "W")
    configs = {
        "ruff.toml": f"[lint]\nextend-select = [{half}]\n".encode(),
        "pkg/ruff.toml": f'extend = "../ruff.toml"\n[lint]\nextend-select = [{other_half}]\n'.encode(),
    }
    lint = LintConfigs(configs)
    with captured() as lines:
        assert lint.for_path("pkg/a.py") is None
        assert lint.for_path("pkg/b.py") is None
    assert lines == [
        f"the lint configuration 'pkg/ruff.toml': not used: its `extend-select` comes to {MAX_SELECTORS + 2} "
        f"selectors with its extends, over {MAX_SELECTORS}"
    ]


def test_too_many_per_file_patterns_is_none() -> None:
    table = "".join(f'"p{i}/*" = ["E"]\n' for i in range(MAX_PATTERNS + 1))
    with captured() as lines:
        assert settings({"ruff.toml": f"[lint.per-file-ignores]\n{table}".encode()}, "a.py") is None
    assert lines == [
        f"the lint configuration 'ruff.toml': not used: `per-file-ignores` has {MAX_PATTERNS + 1} patterns, "
        f"over the {MAX_PATTERNS} read"
    ]


def test_control_characters_from_the_repository_are_escaped_in_the_log() -> None:
    configs = {"a\x1b[31m/ruff.toml": b'[lint]\nselect = ["\\u001b[2J"]\n'}
    with captured() as lines:
        assert settings(configs, "a\x1b[31m/m.py") is None
    assert lines == [
        "the lint configuration 'a\\x1b[31m/ruff.toml': not used: "
        "`select` holds '\\x1b[2J', which is not a rule code"
    ]
    assert all(char.isprintable() for line in lines for char in line)


# -- hostile files --------------------------------------------------------------------------------


@pytest.mark.alone
def test_a_10_mb_pyproject_is_refused_unparsed() -> None:
    huge = b"[tool.ruff]\nline-length = 100\n" + b"# ruff\n" * (10 * 1024 * 1024 // 7)
    started = time.perf_counter()
    with captured() as lines:
        assert settings({"pyproject.toml": huge}, "a.py") is None
    assert time.perf_counter() - started < 0.5
    assert lines == [
        f"the lint configuration 'pyproject.toml': not used: "
        f"{len(huge)} bytes, over the {MAX_CONFIG_BYTES} read"
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # tomllib recurses per level: deep nesting reaches the recursion limit at once.
        (b"a = " + b"[" * 5000 + b"]" * 5000, "nested too deeply to parse"),
        (b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000, "nested too deeply to parse"),
        # Far more keys or tables than any configuration: refused by a count, unparsed.
        (
            b"".join(b"k%d = 1\n" % i for i in range(130_000))[: MAX_CONFIG_BYTES - 1],
            "keys, tables and values",
        ),
        (b"".join(b"[t%d]\n" % i for i in range(150_000))[: MAX_CONFIG_BYTES - 1], "keys, tables and values"),
        (b"a = [" + b"1," * (MAX_CONFIG_BYTES // 2 - 8) + b"]", "keys, tables and values"),
        # One key of many dotted parts costs tomllib quadratic time and memory.
        (b"a" + b".a" * 40_000 + b" = 1", "line 1 has a key of more than 64 dotted parts"),
        (b"[" + b"a." * 20_000 + b"a]", "line 1 has a key of more than 64 dotted parts"),
    ],
)
@pytest.mark.alone
def test_pathological_toml_is_refused_within_a_bound(text: bytes, reason: str) -> None:
    assert len(text) <= MAX_CONFIG_BYTES
    started = time.perf_counter()
    with captured() as lines:
        assert settings({"ruff.toml": text}, "a.py") is None
    assert time.perf_counter() - started < 1.0
    assert len(lines) == 1
    assert reason in lines[0]


def test_the_worst_document_under_the_bounds_parses_in_bounded_time() -> None:
    # Just under MAX_TOML_MARKS of tables: the slowest shape measured (0.4 s, 40 MB).
    tables = b"".join(b"[table_number_%d]\n" % i for i in range(MAX_TOML_MARKS // 2 - 10))
    started = time.perf_counter()
    assert settings({"ruff.toml": tables}, "a.py") == LintSettings(source="ruff.toml")
    assert time.perf_counter() - started < 5.0


def test_a_one_line_string_with_dots_is_not_a_key() -> None:
    text = b'[lint]\nselect = ["E"]\n[other]\nurl = "' + b"a." * 5000 + b'"\n'
    assert settings({"ruff.toml": text}, "a.py") == LintSettings(source="ruff.toml", select=["E"])


def test_what_one_snapshot_parses_is_bounded() -> None:
    # Valid files of about 0.9 MiB each, one per folder on the way up: the budget runs out.
    big = b"line-length = 90\n" + b'x = "' + b"r" * 900_000 + b'"\n'
    configs = {"pyproject.toml": b"[tool.ruff]\n" + big, "a/pyproject.toml": b"[tool.ruff]\n" + big}
    configs["a/b/pyproject.toml"] = b'[tool.other]\nname = "ruff"\n' + big
    assert len(configs["a/b/pyproject.toml"]) * 3 > MAX_PARSED_BYTES
    lint = LintConfigs(configs)
    with captured() as lines:
        assert lint.for_path("a/b/m.py") is not None  # a/b's has no [tool.ruff]: a/'s applies
        assert lint.for_path("m.py") is None
    assert lines == [
        "the lint configuration 'pyproject.toml': not used: "
        f"the repository's configuration files parsed so far pass {MAX_PARSED_BYTES} bytes"
    ]


# -- memoized, shared by threads ------------------------------------------------------------------


class CountingConfigs(dict[str, bytes]):
    """The snapshot's configs, counting each read of a file's bytes."""

    def __init__(self, configs: dict[str, bytes]) -> None:
        super().__init__(configs)
        self.reads: dict[str, int] = {}

    def __getitem__(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().__getitem__(key)


async def test_each_file_is_parsed_once_whatever_the_threads_and_requests() -> None:
    configs = CountingConfigs(
        {
            "pyproject.toml": ROOT_PYPROJECT,
            "pkg/ruff.toml": b'extend = "../pyproject.toml"\nline-length = 90\n',
            "bad/ruff.toml": b"[lint\n",
        }
    )
    lint = LintConfigs(configs)
    paths = [f"{folder}/m{i}.py" for folder in ("pkg", "pkg/sub", "bad", "tests", "") for i in range(20)]

    with captured() as lines:
        results = await asyncio.gather(
            *(asyncio.to_thread(lint.for_path, path.lstrip("/")) for path in paths * 3)
        )

    assert configs.reads == {"pyproject.toml": 1, "pkg/ruff.toml": 1, "bad/ruff.toml": 1}
    assert len(lines) == 1
    by_path = dict(zip([p.lstrip("/") for p in paths * 3], results, strict=True))
    assert by_path["bad/m0.py"] is None
    pkg = by_path["pkg/sub/m3.py"]
    assert pkg is not None
    assert (pkg.source, pkg.line_length) == ("pkg/ruff.toml", 90)
    assert lint.for_path("pkg/sub/m3.py") is pkg


# -- against ruff itself ----------------------------------------------------------------------------


def ruff_findings(root: Path, *args: str) -> dict[str, set[str]]:
    """Rule codes per file (relative path) of `ruff check` run in `root`."""
    run = subprocess.run(
        [RUFF, "check", "--no-cache", "--output-format", "json", "--exit-zero", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, set[str]] = {}
    for item in json.loads(run.stdout):
        found.setdefault(str(Path(item["filename"]).relative_to(root)), set()).add(item["code"])
    return found


def write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


PATHS = [
    "a.py",
    "test_root.py",
    "tests/t.py",
    "tests/sub/test_x.py",
    "src/tests/t.py",
    "pkg/__init__.py",
    "pkg/a.py",
    "pkg/b.pyi",
    "pkg/tests/test_c.py",
    "docs/conf.py",
]


@pytest.mark.parametrize(
    "pattern",
    [
        "tests/*",
        "tests/**/*.py",
        "__init__.py",
        "**/test_*.py",
        "!pkg/*",
        "pkg/{a,__init__}.py",
        "*.pyi",
        "[!t]*/*.py",
        "docs/conf.py",
        "**/tests/**",
        "pkg/**",
        "../x/*.py",
    ],
)
def test_per_file_patterns_cover_the_files_ruff_covers(pattern: str, tmp_path: Path) -> None:
    config = f'[lint]\nselect = ["F401"]\n[lint.per-file-ignores]\n"{pattern}" = ["F401"]\n'.encode()
    write(tmp_path, {"ruff.toml": config, **dict.fromkeys(PATHS, b"import os\n")})

    flagged = set(ruff_findings(tmp_path))

    lint = LintConfigs({"ruff.toml": config})
    ours = set()
    for path in PATHS:
        found = lint.for_path(path)
        assert found is not None
        if "F401" not in found.ignore:
            ours.add(path)
    assert ours == flagged


SAMPLE = b"""import os
import sys


def f(x=[]):
    y = 1
    if x == None:
        pass
    g = lambda: 0
    return "a long line ....................................................................................."
"""


def test_ruff_with_the_resolved_settings_alone_reports_what_ruff_reports_with_the_files(
    tmp_path: Path,
) -> None:
    configs = {
        "pyproject.toml": b"""
[tool.ruff]
line-length = 100
[tool.ruff.lint]
select = ["E", "F", "B"]
ignore = ["E501", "F401"]
[tool.ruff.lint.per-file-ignores]
"tests/*" = ["B", "E7"]
""",
        "pkg/ruff.toml": b'extend = "../pyproject.toml"\n[lint]\nextend-select = ["E501", "UP"]\n'
        b'ignore = ["F8"]\n',
        "pkg/sub/.ruff.toml": b'extend = "../ruff.toml"\n[lint]\nextend-select = ["F841"]\nignore = ["E"]\n',
        "pkg/sub/deeper/ruff.toml": b'extend = "../.ruff.toml"\n[lint]\nselect = ["F", "E711"]\n',
        # ruff hands the ignores of `select = []` on to the next selection.
        "other/ruff.toml": b'[lint]\nselect = []\nignore = ["E711"]\n',
        "other/sub/ruff.toml": b'extend = "../ruff.toml"\n[lint]\nselect = ["E", "F"]\n',
        "app/pyproject.toml": b'[project]\nname = "app"\n',
        "app/core/ruff.toml": b'[lint]\nselect = ["E", "F401"]\nignore = ["E7"]\n'
        b'[lint.per-file-ignores]\n"*.py" = ["E711"]\n',
    }
    paths = [
        "a.py",
        "tests/t.py",
        "pkg/m.py",
        "pkg/tests/t.py",
        "pkg/sub/m.py",
        "pkg/sub/deeper/m.py",
        "app/m.py",
        "app/core/m.py",
        "other/sub/m.py",
    ]
    write(tmp_path, {**configs, **dict.fromkeys(paths, SAMPLE)})
    with_files = ruff_findings(tmp_path)
    assert with_files  # the sample breaks enough rules for the comparison to mean something

    lint = LintConfigs(configs)
    for path in paths:
        found = lint.for_path(path)
        assert found is not None, path
        args = ["--isolated", "--extend-select", ",".join(found.extend_select) or "E9"]
        if found.select is not None:
            args += ["--select", ",".join(found.select)]
        if found.ignore:
            args += ["--ignore", ",".join(found.ignore)]
        if found.line_length is not None:
            args += ["--line-length", str(found.line_length)]
        alone = ruff_findings(tmp_path, *args, path)
        assert alone.get(path, set()) == with_files.get(path, set()), (path, found)


# -- the Python it targets, and preview ------------------------------------------------------------


def resolved(configs: dict[str, str]) -> LintSettings:
    found = settings({path: text.encode() for path, text in configs.items()}, "a.py")
    assert found is not None
    return found


def test_the_target_version_comes_from_ruff_or_else_from_requires_python() -> None:
    requires = '[project]\nrequires-python = ">=3.9"\n\n[tool.ruff]\nline-length = 90\n'
    assert resolved({"pyproject.toml": requires}).target_version == "py39"
    both = '[project]\nrequires-python = ">=3.9"\n\n[tool.ruff]\ntarget-version = "py312"\n'
    assert resolved({"pyproject.toml": both}).target_version == "py312"
    assert resolved({"ruff.toml": 'target-version = "py310"\n'}).target_version == "py310"
    assert resolved({"ruff.toml": "line-length = 90\n"}).target_version is None


def test_preview_is_off_unless_the_repository_turns_it_on() -> None:
    assert resolved({"ruff.toml": "line-length = 90\n"}).preview is False
    assert resolved({"ruff.toml": "[lint]\npreview = true\n"}).preview is True
    assert resolved({"ruff.toml": "preview = true\n"}).preview is True


def test_a_target_version_that_is_not_one_makes_the_configuration_unusable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="analyzer.lintconfig"):
        assert lint_settings_for({"ruff.toml": b'target-version = "python3"\n'}, "a.py") is None
    assert "target-version" in caplog.text
