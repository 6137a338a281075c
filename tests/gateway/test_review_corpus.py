"""The labelled review corpus of `bench review`: well-formed, and every linter-detectable defect named."""

from __future__ import annotations

import ast
import asyncio

import pytest

from bench.review import CATEGORIES, Result, junk_reason, load_corpus, parse_options, report, selected
from gateway.checks import RuffChecker
from gateway.settings import Settings

CASES = load_corpus()


def test_the_corpus_is_large_varied_and_a_third_logic() -> None:
    assert len(CASES) >= 80
    assert len({case.id for case in CASES}) == len(CASES)
    assert {d.category for case in CASES for d in case.defects} == set(CATEGORIES)
    logic = [case for case in CASES if any(not d.linter for d in case.defects)]
    assert len(logic) >= len(CASES) // 3
    for case in CASES:
        ast.parse(case.code, case.id)


async def test_every_defect_a_linter_finds_is_named_by_the_checks_within_the_limit() -> None:
    checker = RuffChecker()
    limit = Settings(_env_file=None).review_max_suggestions
    reviews = await asyncio.gather(*(checker.check(case.code) for case in CASES))
    missed = [
        (case.id, defect.category, [s.text for s in review])
        for case, review in zip(CASES, reviews, strict=True)
        for defect in case.defects
        if defect.linter and not defect.named_by([s.text for s in review[:limit]])
    ]
    assert missed == []


@pytest.mark.parametrize(
    ("suggestion", "reason"),
    [
        ("find_user_by_name", "identifier"),
        ("FUNCTION-d929c82074fb404f", "identifier"),
        ("Password Hash", "fewer than four words"),
        ("return sum(values) / len(values)", "code fragment"),
        ("Add a docstring to mean.", "asks for a docstring the code has"),
        ("Add type hints to the parameter values.", "asks for type hints the code has"),
        ("Guard against an empty list: len(values) may be 0.", ""),
    ],
)
def test_the_benchs_junk_judge(suggestion: str, reason: str) -> None:
    code = 'def mean(values: list[float]) -> float:\n    """Mean."""\n    return sum(values) / len(values)\n'
    assert junk_reason(suggestion, code) == reason


def test_the_bench_selects_by_category_and_limit_and_refuses_unknown_options() -> None:
    security = selected(CASES, parse_options(["--category=security"]))
    assert security
    assert all(any(d.category == "security" for d in case.defects) for case in security)
    assert len(selected(CASES, parse_options(["--limit=3"]))) == 3
    with pytest.raises(SystemExit, match="unknown option"):
        parse_options(["--seed=1"])
    with pytest.raises(SystemExit, match="unknown category"):
        parse_options(["--category=typos"])


def test_the_report_counts_recall_junk_and_model_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    mean = next(case for case in CASES if case.id == "mean_empty")
    evaluated = next(case for case in CASES if case.id == "eval_expression")
    report(
        [
            Result(
                mean,
                ["Guard against an empty list before dividing."],
                ["Guard against an empty list before dividing."],
                1.0,
            ),
            Result(evaluated, ["find_user_by_name"], ["find_user_by_name"], 3.0),
        ]
    )
    out = capsys.readouterr().out
    assert "  empty-input        1 / 1    100.0 %" in out
    assert "  security           0 / 1      0.0 %" in out
    assert "  overall            1 / 2     50.0 %" in out
    assert "suggestions      2 (2 from the model, 1 of them naming a defect)" in out
    assert "junk             1 (50.0 %)" in out
    assert "latency          p50 1.00 s   p95 3.00 s" in out
