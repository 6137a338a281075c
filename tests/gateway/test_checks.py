"""The deterministic checks: ruff on standard input, worded as short suggestions."""

from __future__ import annotations

import pytest

from gateway.checks import DOCS, SYNTAX, TYPES, ChecksFailedError, RuffChecker, join_names

ADD = "def add(a, b): return a + b"


async def texts(code: str) -> list[str]:
    return [s.text for s in await RuffChecker().check(code)]


async def test_add_gets_type_hints_naming_the_parameters_and_a_docstring() -> None:
    found = await RuffChecker().check(ADD)
    assert [s.topic for s in found] == ["types", "docstring"]
    assert found[0].text == "Add type hints to the parameters a and b and a return type to add."
    assert found[0].priority == TYPES
    assert found[1].text == "Add a docstring to add: what it does, takes and returns."
    assert found[1].priority == DOCS


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "def f(items: list[int] = []) -> None:\n    '''Doc.'''\n    items.append(1)\n",
            "Do not use a mutable default for items: default to None and create it inside the function.",
        ),
        (
            "def f() -> None:\n    '''Doc.'''\n    try:\n        g()\n    except:\n        h()\n",
            "Replace the bare except with the specific exceptions you expect.",
        ),
        (
            "def f() -> None:\n    '''Doc.'''\n    try:\n        g()\n    except Exception:\n        log()\n",
            "Catch specific exceptions instead of the broad Exception.",
        ),
        (
            "def f(x: int) -> None:\n    '''Doc.'''\n    print(x)\n",
            "Remove the print call left in, or use logging.",
        ),
        (
            "def f(x: int, unused: int) -> int:\n    '''Doc.'''\n    return x\n",
            "Remove or use the unused argument unused.",
        ),
        (
            "def f(list: int) -> int:\n    '''Doc.'''\n    return list\n",
            "Rename list so it does not shadow a Python builtin.",
        ),
        (
            "def f(s: str) -> object:\n    '''Doc.'''\n    return eval(s)\n",
            "Do not eval data: use ast.literal_eval or explicit parsing.",
        ),
        (
            "def f(x: int) -> bool:\n    '''Doc.'''\n    return x == None\n",
            "Compare with None using 'is' or 'is not', not == or !=.",
        ),
    ],
)
async def test_each_kind_of_problem_gets_its_plain_suggestion(code: str, expected: str) -> None:
    assert await texts(code) == [expected]


async def test_too_complex_names_the_function() -> None:
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))
    code = f"def pick(x: int) -> int:\n    '''Doc.'''\n{branches}    return -1\n"
    found = await texts(code)
    assert "pick is too complex; split it into smaller functions." in found
    assert "pick has too many return statements; simplify it." in found


async def test_code_that_does_not_parse_says_so_first() -> None:
    found = await RuffChecker().check("def broken(a, b:\n    return a\n")
    assert found[0].priority == SYNTAX
    assert found[0].text.startswith("The code does not parse as Python (line 1: ")
    assert found[0].text.endswith("fix the syntax first.")


async def test_a_method_lifted_out_of_its_class_is_dedented_and_self_is_not_reported() -> None:
    code = "    def area(self, scale):\n        return self.w * self.h\n"
    assert await texts(code) == [
        "Add type hints to the parameter scale and a return type to area.",
        "Add a docstring to area: what it does, takes and returns.",
        "Remove or use the unused argument scale.",
    ]


async def test_clean_code_gets_no_suggestions() -> None:
    code = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n    return a + b\n'
    assert await texts(code) == []


async def test_names_from_code_never_reach_ruffs_command_line() -> None:
    # The code goes on stdin only: a function named like an option is just a function.
    assert await texts("def __select(a): return a") == [
        "Add type hints to the parameter a and a return type to __select."
    ]


async def test_a_broken_ruff_binary_is_reported_not_taken_for_clean_code() -> None:
    # An empty list would read as "nothing to say", and be cached as a complete review.
    checker = RuffChecker()
    checker.binary = "/bin/false"
    with pytest.raises(ChecksFailedError, match="ruff exited with 1"):
        await checker.check(ADD)


def test_join_names() -> None:
    assert join_names([]) == ""
    assert join_names(["a"]) == "a"
    assert join_names(["a", "b"]) == "a and b"
    assert join_names(["a", "b", "c"]) == "a, b and c"
