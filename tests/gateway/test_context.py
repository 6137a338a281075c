"""A function checked in its module: the repository's ruff settings, CORE rules, type findings, data."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.checks import ChecksFailedError, RuffChecker, reported, type_suggestions
from gateway.rules import CORRECTNESS
from review_contract import LintSettings, ReviewContext, TypeFinding
from tests.gateway.conftest import gateway_client, local_settings
from tests.support.fake_llm import FakeLLM, review_reply

MODULE = '''\
"""Orders."""

import json

LIMIT = 10


class Order:
    """An order."""

    def __init__(self, items):
        self.items = items

    def __exit__(self, exc_type, exc, tb):
        return None

    def total(self):
        return sum(self.items) + missing_name

    def dump(self) -> str:
        """The order as JSON."""
        return eval(json.dumps(self.items))  # noqa: S307


def run(expression: str) -> object:
    """Evaluate."""
    return eval(expression)
'''


def lines_of(name: str) -> tuple[int, int]:
    """The first and last line of the method or function `name` in MODULE (to the next blank line)."""
    rows = MODULE.splitlines()
    start = next(i for i, line in enumerate(rows, 1) if f"def {name}(" in line)
    end = start
    while end < len(rows) and rows[end].strip():
        end += 1
    return start, end


def context_for(name: str, **values: object) -> tuple[str, ReviewContext]:
    start, end = lines_of(name)
    rows = MODULE.splitlines(keepends=True)[start - 1 : end]
    indent = len(rows[0]) - len(rows[0].lstrip())
    code = "".join(row[indent:] for row in rows)
    fields: dict[str, object] = {
        "path": "shop/orders.py",
        "module": MODULE,
        "start_line": start,
        "end_line": end,
    }
    fields.update(values)
    return code, ReviewContext(**fields)  # type: ignore[arg-type]


async def texts_in_context(name: str, **values: object) -> list[str]:
    code, context = context_for(name, **values)
    return [s.text for s in await RuffChecker().check_in_context(code, context)]


async def test_a_method_in_its_class_is_judged_as_one_and_dunder_names_are_right() -> None:
    # Cut out, N807 took __init__ for a module-level function; in its class it is a method.
    found = await texts_in_context("__init__")
    assert found == ["Add type hints to the parameter items."]


async def test_names_of_the_module_count_and_undefined_ones_are_said() -> None:
    found = await texts_in_context("total")
    assert "Undefined name missing_name." in found
    assert not [t for t in found if "LIMIT" in t or "json" in t]


async def test_noqa_comments_of_the_repository_are_honoured() -> None:
    assert await texts_in_context("dump") == []


async def test_protocol_methods_keep_their_unused_arguments() -> None:
    assert await texts_in_context("__exit__") == ["Add type hints to the parameters exc_type, exc and tb."]


async def test_the_repositorys_selection_decides_style_but_core_bugs_are_still_said() -> None:
    lint = LintSettings(source="pyproject.toml", select=["E", "F"])
    # No docstring or type-hint demands (the repository selects neither); eval is a CORE rule.
    assert await texts_in_context("run", lint=lint) == [
        "Do not eval data: use ast.literal_eval or explicit parsing."
    ]
    assert await texts_in_context("total", lint=lint) == ["Undefined name missing_name."]


async def test_a_core_rule_the_repository_ignores_by_its_exact_code_is_not_said() -> None:
    assert (
        await texts_in_context("run", lint=LintSettings(source="ruff.toml", select=["E"], ignore=["S307"]))
        == []
    )
    # Ignoring the whole family is not ignoring this rule: bugs and security are said anyway.
    assert await texts_in_context(
        "run", lint=LintSettings(source="ruff.toml", select=["E"], ignore=["S"])
    ) == ["Do not eval data: use ast.literal_eval or explicit parsing."]


def test_the_most_specific_selector_wins_as_in_ruff() -> None:
    lint = LintSettings(source="x", select=["ALL"], ignore=["D", "ANN"], extend_select=["D103"])
    assert reported("D103", lint)
    assert not reported("D102", lint)
    assert reported("B006", lint)
    assert not reported("E501", LintSettings(source="x", select=["E"], ignore=["E501"]))
    assert reported("E501", LintSettings(source="x", select=["E501"], ignore=["E"]))
    # Without a selection, ruff's default (E4, E7, E9, F) applies; a CORE rule is said anyway.
    assert reported("F841", LintSettings(source="x"))
    assert not reported("D103", LintSettings(source="x"))
    assert reported("S307", LintSettings(source="x"))


async def test_findings_outside_the_functions_lines_or_past_a_cut_are_not_said() -> None:
    code, context = context_for("total")
    cut = code.splitlines(keepends=True)[0]  # only the def line was sent
    found = await RuffChecker().check_in_context(cut, context)
    assert not [s for s in found if "missing_name" in s.text]


async def test_places_are_lines_of_the_function_as_sent() -> None:
    code, context = context_for("total")
    found = await RuffChecker().check_in_context(code, context)
    undefined = next(s for s in found if "missing_name" in s.text)
    assert [(p.rule, p.line) for p in undefined.places] == [("F821", 2)]


async def test_selectors_this_ruff_does_not_have_are_left_out_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An unknown code and a removed rule: ruff would refuse the whole run for either.
    lint = LintSettings(source="pkg/ruff.toml", select=["ZZZ999", "S320", "D103"])
    with caplog.at_level(logging.WARNING, logger="gateway.checks"):
        found = await texts_in_context("run", lint=lint)
    assert found == ["Do not eval data: use ast.literal_eval or explicit parsing."]
    assert [r.getMessage() for r in caplog.records] == [
        "the configuration 'pkg/ruff.toml' selects rules this ruff does not have, left out: 'ZZZ999', 'S320'"
    ]


async def test_a_broken_ruff_is_still_a_failure_in_context() -> None:
    checker = RuffChecker()
    checker.binary = "/bin/false"
    code, context = context_for("run")
    with pytest.raises(ChecksFailedError):
        await checker.check_in_context(code, context)


def test_type_findings_on_the_functions_lines_become_bug_suggestions_once_each() -> None:
    start, _ = lines_of("total")
    types = [
        TypeFinding(
            rule="missing-argument", message="No argument provided for required parameter `x`", line=start + 1
        ),
        TypeFinding(
            rule="missing-argument", message="No argument provided for required parameter `x`", line=start + 1
        ),
        # ruff's F821 already says this one.
        TypeFinding(
            rule="unresolved-reference", message="Name `missing_name` used when not defined", line=start + 1
        ),
        TypeFinding(rule="call-non-callable", message="Object of type `int` is not callable", line=1),
    ]
    code, context = context_for("total", types=types)
    found = type_suggestions(code, context)
    assert [(s.text, s.priority, s.topic) for s in found] == [
        ("No argument provided for required parameter x.", CORRECTNESS, "ty/missing-argument")
    ]
    assert [(p.rule, p.line) for p in found[0].places] == [("ty/missing-argument", 2)]


async def test_the_code_review_model_takes_the_context_and_answers_findings_in_file_lines(
    local_fake: FakeLLM,
) -> None:
    local_fake.script("/chat/completions", review_reply("Check the items are numbers."))
    code, context = context_for("total", types=[], uses="def helper(x: int) -> int: ...")
    body = {
        "model": "code-review",
        "messages": [{"role": "user", "content": code}],
        "review_context": json.loads(
            json.dumps(context, default=lambda o: {f: getattr(o, f) for f in o.__struct_fields__})
        ),
    }
    async with gateway_client(local_settings(local_fake)) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    review = json.loads(response.json()["choices"][0]["message"]["content"])
    assert "Undefined name missing_name." in review["suggestions"]
    undefined = next(f for f in review["findings"] if f["rule"] == "F821")
    start, _ = lines_of("total")
    assert (undefined["path"], undefined["line"], undefined["severity"]) == (
        "shop/orders.py",
        start + 1,
        "error",
    )
    # The model saw what the function uses, fenced as context, before the function.
    prompt = local_fake.sent("/chat/completions")[0].json()["messages"][1]["content"]
    assert "What the function uses from its repository (context, not to review):" in prompt
    assert prompt.index("def helper(x: int) -> int: ...") < prompt.index("def total(self):")


async def test_a_context_whose_lines_are_not_in_its_module_is_refused(local_fake: FakeLLM) -> None:
    body = {
        "model": "code-review",
        "messages": [{"role": "user", "content": "def f(): pass"}],
        "review_context": {"path": "a.py", "module": "def f(): pass\n", "start_line": 5, "end_line": 9},
    }
    async with gateway_client(local_settings(local_fake)) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 422
    assert "review_context: lines 5-9 are not in the module's 2 lines" in response.text


async def test_a_review_without_its_type_check_is_not_cached(local_fake: FakeLLM) -> None:
    local_fake.script("/chat/completions", review_reply("One."), review_reply("Two."))
    code, context = context_for("run")  # types None: the check did not run
    body = {
        "model": "code-review",
        "messages": [{"role": "user", "content": code}],
        "review_context": {
            "path": context.path,
            "module": MODULE,
            "start_line": context.start_line,
            "end_line": context.end_line,
        },
    }
    async with gateway_client(local_settings(local_fake)) as client:
        first = await client.post("/v1/chat/completions", json=body)
        second = await client.post("/v1/chat/completions", json=body)
    assert first.status_code == second.status_code == 200
    assert len(local_fake.sent("/chat/completions")) == 2


async def test_in_a_repository_the_python_it_targets_and_its_preview_choice_decide() -> None:
    module = 'def f(x: "int") -> int:\n    return x  # noqa: E501\n'
    context = ReviewContext(
        path="m.py",
        module=module,
        start_line=1,
        end_line=2,
        lint=LintSettings(source="ruff.toml", select=["UP", "RUF"], target_version="py39"),
    )
    # For Python 3.9 the quotes are needed (UP037 is for 3.14's deferred annotations); an unused

    assert await RuffChecker().check_in_context(module, context) == []


async def test_lines_are_counted_as_ruff_counts_them_a_form_feed_is_no_line_end() -> None:
    # str.splitlines would split at the form feed too, take "class Box:" for the method's first
    # line, and shift every column of the finding by its indentation.
    module = "import os\n\x0c\nclass Box:\n    def size(self):\n        return missing\n"
    code = "def size(self):\n    return missing\n"
    context = ReviewContext(
        path="box.py", module=module, start_line=4, end_line=5, lint=LintSettings(source="x")
    )
    [undefined] = await RuffChecker().check_in_context(code, context)
    assert [(p.rule, p.line, p.column) for p in undefined.places] == [("F821", 2, 12)]


async def test_the_modules_own_findings_are_not_said_of_a_function_on_its_first_line() -> None:
    """ruff puts D100 (no module docstring), INP001 and the like at line 1: a function starting
    there does not get them; its own docstring finding (D103) it does."""
    module = "def add(a: int, b: int) -> int:\n    return a + b\n"
    code = module
    context = ReviewContext(path="pkg/calc.py", module=module, start_line=1, end_line=2)
    said = " ".join(s.text for s in await RuffChecker().check_in_context(code, context))
    assert "docstring" in said  # D103: the function's own
    assert "module" not in said.lower()
    configured = ReviewContext(
        path="pkg/calc.py",
        module=module,
        start_line=1,
        end_line=2,
        lint=LintSettings(source="pyproject.toml", select=["D1", "INP", "CPY"], preview=True),
    )
    found = await RuffChecker().check_in_context(code, configured)
    assert {place.rule for s in found for place in s.places} == {"D103"}
