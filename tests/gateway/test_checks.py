"""The deterministic checks: ruff on standard input, worded as short suggestions."""

from __future__ import annotations

import pytest

from gateway.checks import ChecksFailedError, RuffChecker, join_names
from gateway.rules import (
    CORRECTNESS,
    DOCS,
    ERRORS,
    IGNORED,
    PERFORMANCE,
    RULES,
    SECURITY,
    STYLE,
    SYNTAX,
    TYPES,
    plain_message,
    rule_for,
)

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
            'def f(items: list[int] = []) -> None:\n    """Doc."""\n    items.append(1)\n',
            "Do not use a mutable default for items: default to None and create it inside the function.",
        ),
        (
            'def f() -> None:\n    """Doc."""\n    try:\n        g()\n    except:\n        h()\n',
            "Replace the bare except with the specific exceptions you expect.",
        ),
        (
            'def f() -> None:\n    """Doc."""\n    try:\n        g()\n    except Exception:\n        log()\n',
            "Catch specific exceptions instead of the broad Exception.",
        ),
        (
            'def f(x: int) -> None:\n    """Doc."""\n    print(x)\n',
            "Remove the print call left in, or use logging.",
        ),
        (
            'def f(x: int, unused: int) -> int:\n    """Doc."""\n    return x\n',
            "Remove or use the unused argument unused.",
        ),
        (
            'def f(list: int) -> int:\n    """Doc."""\n    return list\n',
            "Rename list to avoid shadowing a Python builtin.",
        ),
        (
            'def f(s: str) -> object:\n    """Doc."""\n    return eval(s)\n',
            "Do not eval data: use ast.literal_eval or explicit parsing.",
        ),
        (
            'def f(x: int) -> bool:\n    """Doc."""\n    return x == None\n',
            "Compare with None using 'is' or 'is not', not == or !=.",
        ),
    ],
)
async def test_each_kind_of_problem_gets_its_plain_suggestion(code: str, expected: str) -> None:
    assert await texts(code) == [expected]


async def test_too_complex_names_the_function() -> None:
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))
    code = f'def pick(x: int) -> int:\n    """Doc."""\n{branches}    return -1\n'
    found = await texts(code)
    # One concern, said once: not "too complex" beside "too many return statements".
    assert "pick is too complex; split it into smaller functions." in found
    assert not [text for text in found if "too many return statements" in text]


async def test_code_that_does_not_parse_says_so_first() -> None:
    found = await RuffChecker().check("def broken(a, b:\n    return a\n")
    assert found[0].priority == SYNTAX
    assert found[0].text.startswith("The code does not parse as Python (line 1: ")
    assert found[0].text.endswith("fix the syntax first.")


async def test_a_method_lifted_out_of_its_class_is_dedented_and_self_is_not_reported() -> None:
    # Judged as a method: an unused argument of a method is the interface's choice, not a finding.
    code = "    def area(self, scale):\n        return self.w * self.h\n"
    assert await texts(code) == [
        "Add type hints to the parameter scale and a return type to area.",
        "Add a docstring to area: what it does, takes and returns.",
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


DOC = '    """Doc."""\n'


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            f"import random\n\n\ndef token() -> float:\n{DOC}    return random.random()\n",
            "Use the secrets module for tokens and passwords: random is predictable, "
            "not cryptographically secure.",
        ),
        (
            f"import time\n\n\nasync def wait() -> None:\n{DOC}    time.sleep(1)\n",
            "time.sleep blocks the event loop in an async function; use await asyncio.sleep().",
        ),
        (
            f"async def save(path: str) -> None:\n{DOC}"
            '    with open(path, "w", encoding="utf-8") as f:\n        f.write("x")\n',
            "open blocks the event loop in an async function; use asyncio.to_thread, anyio or aiofiles.",
        ),
        (
            f"def withdraw(amount: int) -> int:\n{DOC}    assert amount > 0\n    return amount\n",
            "Do not use assert to check input or state: python -O removes it; raise an exception instead.",
        ),
        (
            f'def first(path: str) -> str:\n{DOC}    f = open(path, encoding="utf-8")\n    return f.read()\n',
            "Open files in a with statement so they are always closed.",
        ),
        (
            f"def read(path: str) -> str:\n{DOC}    with open(path) as f:\n        return f.read()\n",
            "Pass encoding= to open: the default depends on the machine's locale.",
        ),
        (
            f"import asyncio\n\n\nasync def go(job: object) -> None:\n{DOC}    asyncio.create_task(job())\n",
            "Keep a reference to the task create_task returns and await it: a task nobody holds can vanish.",
        ),
        (
            f"def drop(d: dict[str, int]) -> None:\n{DOC}    for k in d:\n        del d[k]\n",
            "Do not change the collection the loop iterates over; iterate over a copy (list(...)) instead.",
        ),
        (
            f"def names(xs: list[str]) -> list[str]:\n{DOC}"
            "    out = []\n    for x in xs:\n        x = x.strip()\n        out.append(x)\n    return out\n",
            "Do not overwrite the loop variable x inside the loop.",
        ),
    ],
)
async def test_security_bug_and_blocking_rules_get_plain_words(code: str, expected: str) -> None:
    found = await texts(code)
    assert expected in found


async def test_a_rule_without_our_wording_gets_ruffs_message_made_plain() -> None:
    code = (
        f"import os\n\n\ndef remove(path: str) -> None:\n{DOC}"
        "    try:\n        os.remove(path)\n    except FileNotFoundError:\n        pass\n"
    )
    found = await RuffChecker().check(code)
    assert [(s.text, s.priority) for s in found] == [
        ("Use 'contextlib.suppress(FileNotFoundError)' instead of try-except-pass.", STYLE)
    ]


async def test_bugs_and_security_come_before_hints_docs_and_style() -> None:
    code = "import random\n\ndef token(n, unused):\n    print(n)\n    return random.random() == None\n"
    found = await RuffChecker().check(code)
    assert [s.priority for s in found] == [SECURITY, CORRECTNESS, TYPES, DOCS, STYLE, STYLE]
    assert found[0].text.startswith("Use the secrets module")
    assert found[1].text == "Compare with None using 'is' or 'is not', not == or !=."


@pytest.mark.parametrize(
    "code",
    [
        # An inner function cut out of its outer one: the nonlocal's binding and the helper are elsewhere.
        '    def inner() -> int:\n        """Doc."""\n        nonlocal count\n        count += 1\n'
        "        return helper(count)\n",
        # @overload variants sent together, without the module's `from typing import overload`.
        "@overload\ndef parse(x: int) -> int: ...\n@overload\ndef parse(x: str) -> str: ...\n"
        'def parse(x: int | str) -> int | str:\n    """Doc."""\n    return x\n',
        # A property getter and setter sent together, a decorator from the module.
        '@property\ndef name(self) -> str:\n    """Doc."""\n    return self._name\n\n'
        '@name.setter\ndef name(self, value: str) -> None:\n    """Doc."""\n    self._name = value\n',
        '@app.get("/items")\nasync def items(q: str) -> list[str]:\n    """Doc."""\n'
        "    return await search(q)\n",
        # A test asserts and compares with literals: that is what tests do.
        'def test_add() -> None:\n    """Doc."""\n    assert add(1, 2) == 3\n',
    ],
)
async def test_a_function_cut_out_of_its_module_gets_no_misfiring_finding(code: str) -> None:
    assert await texts(code) == []


def test_rules_that_misfire_on_a_cut_out_function_are_off() -> None:
    assert {"F821", "F811", "PLE0117", "D100"} <= set(IGNORED)
    assert not set(IGNORED) & set(RULES)


def test_a_rule_without_an_entry_takes_its_familys_priority() -> None:
    assert rule_for("S999").priority == SECURITY
    assert rule_for("SIM105").priority == STYLE
    assert rule_for("ASYNC109").priority == CORRECTNESS
    assert rule_for("PLE1142").priority == CORRECTNESS
    assert rule_for("T100").priority == CORRECTNESS
    assert rule_for("T201").priority == STYLE
    assert rule_for("C401").priority == PERFORMANCE
    assert rule_for("TRY300").priority == ERRORS


def test_plain_message() -> None:
    assert plain_message("Unused function argument: `language`") == "Unused function argument: language."
    assert plain_message("Use `key in dict` instead of `key in dict.keys()`") == (
        "Use 'key in dict' instead of 'key in dict.keys()'."
    )
    assert plain_message("found useless   expression!") == "Found useless expression!"


async def test_several_names_make_the_noun_plural() -> None:
    code = 'def f(a: int, b: int) -> int:\n    """Doc."""\n    return 1\n'
    assert await texts(code) == ["Remove or use the unused arguments a and b."]


@pytest.mark.parametrize(
    "code",
    [
        'def __init__(self, name: str) -> None:\n    """Doc."""\n    self.name = name\n',
        "    def __eq__(self, other: object) -> bool:\n        return self is other\n",
        "def __exit__(self, exc_type: object, exc: object, tb: object) -> None:\n    self.close()\n",
        '@classmethod\ndef from_text(cls, text: str) -> int:\n    """Doc."""\n    return cls.parse(text)\n',
    ],
)
async def test_a_function_shaped_like_a_method_is_judged_as_a_method(code: str) -> None:
    # Cut out, N807 ("should not start and end with __") took each for a module-level function.
    assert await texts(code) == []


async def test_one_concern_is_said_once() -> None:
    params = ", ".join(f"a{i}: int" for i in range(8))
    branches = "".join(f"    if a0 == {i}:\n        a1 += {i}\n" for i in range(14))
    code = f'def big({params}) -> int:\n    """Doc."""\n{branches}    return a1\n'
    found = await texts(code)
    assert [t for t in found if "complex" in t or "branches" in t] == [
        "big is too complex; split it into smaller functions."
    ]
    # A published signature cannot change: argument counts are not said by default (PEDANTIC).
    assert not [t for t in found if "arguments" in t and "many" in t]


async def test_a_silenced_broad_except_is_one_concern() -> None:
    code = 'def f() -> None:\n    """Doc."""\n    try:\n        g()\n    except Exception:\n        pass\n'
    assert await texts(code) == ["Do not silence exceptions with except: pass; handle them or log them."]


async def test_a_module_level_helper_whose_first_parameter_is_cls_is_not_a_method() -> None:
    code = 'def has(cls: type) -> bool:\n    """Doc."""\n    return hasattr(cls, "x")\n'
    assert await texts(code) == []
