"""POST /checks: whole modules at once, each function given exactly what a review in context gives it.

Real ruff throughout. Where ruff has to fail or hang, a wrapper script around the real binary
does so for one named file, so the rest of the batch still runs the real thing.
"""

from __future__ import annotations

import ast
import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from analyzer.analysis import dedent
from analyzer.sources import Lines
from gateway.batch import ModuleChecks, function_code, rule_info, unsafe_path
from gateway.checks import RuffChecker
from gateway.errors import InvalidInputError
from review_contract import MAX_CHECK_MODULES, LintSettings, TypeFinding
from review_contract.checks import (
    CheckedFunction,
    ChecksRequest,
    ChecksResponse,
    ModuleToCheck,
)
from tests.gateway.conftest import gateway_client, make_settings

# Varied modules: methods and nested functions, decorators, noqa, a syntax error, a form feed,
# tabs, CRLF line ends, a test module, CORE rules under a repository's own selection.
ORDERS = '''\
"""Orders."""

import json
import os

LIMIT = 10


class Order:
    """An order."""

    def __init__(self, items, tags=[]):
        self.items = items

    @property
    def total(self):
        return sum(self.items) + missing_name

    @staticmethod
    def dump(value) -> str:
        """The order as JSON."""
        return eval(json.dumps(value))  # noqa: S307

    def loop(self, rows):
        for row in rows:
            try:
                print(row)
            except:
                pass
        global LIMIT
        LIMIT = 3


def outer(values=[], *args):
    def inner(x):
        return eval(x)

    return [inner(v) for v in values]


async def fetch(url):
    import time
    time.sleep(1)
    return os.system("curl " + url)
'''
BROKEN = """\
def fine(a):
    return a + undefined


def broken(b:
    return b
"""
FORM_FEED = "def first(a):\n    return a\n\x0c\ndef second(b, c=[]):\n    print(b)\n    return c\n"
TABS = "class Box:\n\tdef put(self, item, bag={}):\n\t\tbag[item] = eval(item)\n\t\treturn bag\n"
CRLF = "import os\r\n\r\ndef run(cmd):\r\n    os.system(cmd)\r\n    return None\r\n"
TESTS = "def test_sum():\n    assert sum([1, 2]) == 3\n    print(42)\n"
STYLED = "import pickle\n\ndef load(data, cache={}):\n    x = 1\n    return pickle.loads(data)\n"


def functions_of(module: str) -> list[CheckedFunction]:
    """Every function of `module` with its lines as the analyzer locates them (decorators included)."""
    found: list[CheckedFunction] = []
    for node in ast.walk(ast.parse(module)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append(CheckedFunction(name=node.name, start_line=start, end_line=node.end_lineno or start))
    return found


def modules() -> list[ModuleToCheck]:
    pep8 = LintSettings(source="pyproject.toml", select=["E", "F"], ignore=["E731"])
    # As the analyzer resolves per-file ignores: already in `ignore` for the file.
    per_file = LintSettings(source="pyproject.toml", extend_select=["B", "T20"], ignore=["B006", "S"])
    return [
        ModuleToCheck(path="shop/orders.py", module=ORDERS, functions=functions_of(ORDERS)),
        ModuleToCheck(
            path="shop/broken.py",
            module=BROKEN,
            functions=[
                CheckedFunction(name="fine", start_line=1, end_line=2),
                CheckedFunction(name="broken", start_line=5, end_line=6),
            ],
        ),
        ModuleToCheck(path="ff.py", module=FORM_FEED, functions=functions_of(FORM_FEED)),
        ModuleToCheck(path="pkg/tabs.py", module=TABS, functions=functions_of(TABS), lint=pep8),
        ModuleToCheck(path="pkg/crlf.py", module=CRLF, functions=functions_of(CRLF), lint=per_file),
        ModuleToCheck(path="tests/test_sum.py", module=TESTS, functions=functions_of(TESTS), lint=per_file),
        ModuleToCheck(
            path="pkg/styled.py",
            module=STYLED,
            functions=functions_of(STYLED),
            lint=pep8,
            types=[
                TypeFinding(rule="invalid-argument-type", message="Argument is wrong", line=5, column=12),
                TypeFinding(rule="unresolved-reference", message="Name `x` is not defined", line=4),
                TypeFinding(rule="call-non-callable", message="Not callable", line=1),
            ],
        ),
    ]


def analyzer_code(module: str, function: CheckedFunction) -> str:
    """What the analyzer sends as the function's code: its lines, dedented as analyzer.analysis does."""
    lines = Lines(module)
    text = "".join(lines.line(n) for n in range(function.start_line, function.end_line + 1))
    indent = text[: len(text) - len(text.lstrip(" \t\f"))]
    return dedent(text[len(indent) :].rstrip("\r\n"), indent)


async def single_review(client: httpx.AsyncClient, module: ModuleToCheck, function: CheckedFunction) -> Any:
    types = None
    if module.types is not None:
        types = [t for t in module.types if function.start_line <= t.line <= function.end_line]
    context = {
        "path": module.path,
        "module": module.module,
        "start_line": function.start_line,
        "end_line": function.end_line,
        "lint": msgspec.to_builtins(module.lint) if module.lint else None,
        "types": msgspec.to_builtins(types) if types is not None else None,
    }
    response = await client.post(
        "/v1/chat/completions",
        json={
            "model": "code-review",
            "messages": [{"role": "user", "content": analyzer_code(module.module, function)}],
            "review_context": context,
        },
    )
    assert response.status_code == 200, response.text
    return json.loads(response.json()["choices"][0]["message"]["content"])["findings"]


def checks_only_settings(**values: Any) -> Any:
    # A model too small to be asked (prompt.asks_the_model): a review is its checks alone.
    return make_settings(llm_provider="local", local_llm_model="smollm2-135m-instruct", **values)


async def test_each_function_gets_exactly_what_a_review_in_context_gives_it() -> None:
    request = ChecksRequest(modules=modules())
    async with gateway_client(checks_only_settings()) as client:
        response = await client.post("/checks", content=msgspec.json.encode(request))
        assert response.status_code == 200, response.text
        answer = msgspec.json.decode(response.content, type=ChecksResponse)
        compared = 0
        for module, answered in zip(request.modules, answer.modules, strict=True):
            assert answered.path == module.path
            assert answered.error is None
            batch = {f.name: msgspec.to_builtins(f.findings) for f in answered.functions}
            for function in module.functions:
                single = await single_review(client, module, function)
                assert batch.get(function.name, []) == single, (module.path, function.name)
                compared += len(single)
    # The modules are not clean: many findings of many rules were compared, not empty lists.
    rules = {f.rule for m in answer.modules for fn in m.functions for f in fn.findings}
    assert compared >= 30
    assert {"B006", "S307", "F821", "invalid-syntax", "S605", "ty/invalid-argument-type"} <= rules
    # Each rule named is described.
    assert set(answer.rules) == rules
    assert answer.rules["B006"].name == "mutable-argument-default"
    assert answer.rules["B006"].url == "https://docs.astral.sh/ruff/rules/mutable-argument-default/"
    assert answer.rules["ty/invalid-argument-type"].url == (
        "https://docs.astral.sh/ty/reference/rules/#invalid-argument-type"
    )


async def test_one_ruff_process_per_group_of_modules_with_the_same_settings() -> None:
    checker = RuffChecker()
    runs: list[list[str]] = []
    real = checker.files_findings

    async def counted(root: str, files: list[str], run: Any) -> Any:
        runs.append(files)
        return await real(root, files, run)

    checker.files_findings = counted  # type: ignore[method-assign]
    answer = await ModuleChecks(checker).check(ChecksRequest(modules=modules()))
    assert all(m.error is None for m in answer.modules)
    # No settings; E/F; extend B, T20 (for two modules): three groups, three ruff processes.
    assert sorted(sorted(files) for files in runs) == [
        ["ff.py", "shop/broken.py", "shop/orders.py"],
        ["pkg/crlf.py", "tests/test_sum.py"],
        ["pkg/styled.py", "pkg/tabs.py"],
    ]


def test_the_function_code_is_what_the_analyzer_sends() -> None:
    for module in modules():
        lines = Lines(module.module)
        for function in module.functions:
            assert function_code(module.module, lines.starts, function) == analyzer_code(
                module.module, function
            )


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd.py", "../up.py", "a/../../b.py", "a//b.py", "./a.py", "a/./b.py", "nul\0.py", "", "a/"],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    assert unsafe_path(path) is not None


async def test_unsafe_and_repeated_paths_get_an_error_and_the_others_are_answered(tmp_path: Path) -> None:
    code = "def f(x=[]):\n    return x\n"
    fn = [CheckedFunction(name="f", start_line=1, end_line=2)]
    request = ChecksRequest(
        modules=[
            ModuleToCheck(path=path, module=code, functions=fn)
            for path in ("../escape.py", "/abs.py", "ok.py", "ok.py", "a.py", "a.py/b.py", "x" * 300 + ".py")
        ]
    )
    answer = await ModuleChecks(RuffChecker(), temp_dir=str(tmp_path)).check(request)
    errors = [m.error for m in answer.modules]
    assert errors[0] == "not checked: the path has an empty, '.' or '..' part"
    assert errors[1] == "not checked: the path is absolute"
    assert errors[2] is None
    assert errors[3] == "not checked: the same path came earlier in this request"
    assert errors[4] is None
    assert (errors[5] or "").startswith("not checked: the module could not be written")
    assert errors[6] == "not checked: the module could not be written (OSError)"
    assert [f.rule for f in answer.modules[2].functions[0].findings] == [
        "B006",
        "ANN201",
        "ANN001",
        "D103",
    ]  # not D100: the module's docstring is not the function's (rules.MODULE_SCOPED)
    assert not (tmp_path.parent / "escape.py").exists()
    assert list(tmp_path.iterdir()) == []


def wrapper(tmp_path: Path, body: str) -> str:
    """A script that runs `body` (shell) and then the real ruff with the same arguments."""
    script = tmp_path / "ruff-wrapper.sh"
    real = RuffChecker().binary
    script.write_text(f'#!/bin/sh\n{body}\nexec "{real}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def batch_of(*paths: str) -> ChecksRequest:
    code = "def f(x=[]):\n    return x\n"
    fn = [CheckedFunction(name="f", start_line=1, end_line=2)]
    return ChecksRequest(modules=[ModuleToCheck(path=p, module=code, functions=fn) for p in paths])


async def test_a_module_ruff_fails_on_gets_the_error_and_the_others_are_answered(tmp_path: Path) -> None:
    checker = RuffChecker()
    checker.binary = wrapper(tmp_path, 'case " $* " in *" bad.py "*) exit 2;; esac')
    work = tmp_path / "work"
    work.mkdir()
    answer = await ModuleChecks(checker, temp_dir=str(work)).check(batch_of("a.py", "bad.py", "c.py", "d.py"))
    assert [m.error for m in answer.modules] == [
        None,
        "ruff could not check this module: ruff exited with 2",
        None,
        None,
    ]
    assert all(m.functions for i, m in enumerate(answer.modules) if i != 1)
    assert list(work.iterdir()) == []


async def test_a_module_ruff_hangs_on_times_out_alone(tmp_path: Path) -> None:
    checker = RuffChecker(timeout=1.0)
    checker.binary = wrapper(tmp_path, 'case " $* " in *" slow.py "*) exec sleep 30;; esac')
    answer = await ModuleChecks(checker).check(batch_of("a.py", "slow.py", "c.py"))
    assert [m.error for m in answer.modules] == [
        None,
        "ruff could not check this module: ruff took longer than 1s",
        None,
    ]


async def test_settings_ruff_refuses_fall_back_to_the_default_as_a_single_review_does() -> None:
    # A selector this ruff does not know is left out first; a line length ruff refuses cannot be.
    lint = LintSettings(source="ruff.toml", select=["E", "F", "NOPE1"], line_length=320)
    checker = RuffChecker()
    request = ChecksRequest(
        modules=[
            ModuleToCheck(
                path="a.py",
                module="import os\n\ndef f(x=[]):\n    return eval(x)\n",
                functions=[CheckedFunction(name="f", start_line=3, end_line=4)],
                lint=lint,
            )
        ]
    )
    answer = await ModuleChecks(checker).check(request)
    assert answer.modules[0].error is None
    # Judged by the repository's selection (E, F and the CORE rules): eval and the mutable default.
    assert [f.rule for f in answer.modules[0].functions[0].findings] == ["S307", "B006"]


async def test_the_temporary_folder_is_removed_when_the_request_is_cancelled(tmp_path: Path) -> None:
    checker = RuffChecker()
    checker.binary = wrapper(tmp_path, "exec sleep 30")
    work = tmp_path / "work"
    work.mkdir()
    task = asyncio.create_task(ModuleChecks(checker, temp_dir=str(work)).check(batch_of("a.py")))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if any(work.iterdir()):
            break
    assert any(work.iterdir())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(work.iterdir()) == []


async def test_function_lines_outside_the_module_are_refused() -> None:
    request = ChecksRequest(
        modules=[
            ModuleToCheck(
                path="a.py",
                module="def f():\n    pass\n",
                functions=[CheckedFunction(name="f", start_line=2, end_line=9)],
            )
        ]
    )
    with pytest.raises(InvalidInputError, match=r"function 'f' has lines 2-9, not in the module's 3 lines"):
        await ModuleChecks(RuffChecker()).check(request)


async def test_limits_and_refusals_over_http() -> None:
    settings = checks_only_settings(gateway_checks_max_bytes=64 * 1024)
    async with gateway_client(settings) as client:
        big = batch_of("a.py")
        huge = msgspec.json.encode(
            ChecksRequest(modules=[msgspec.structs.replace(big.modules[0], module="x = 1\n" * 20_000)])
        )
        response = await client.post("/checks", content=huge, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"]["message"] == (
            "request body is larger than /checks accepts (GATEWAY_CHECKS_MAX_BYTES)"
        )
        assert response.json()["error"]["type"] == "invalid_request_error"
        # The limit is this route's own: other routes keep theirs.
        assert (await client.post("/analyze", json={"function_code": "x = 1\n" * 1000})).status_code == 200

        many = {
            "modules": [
                {"path": f"m{i}.py", "module": "", "functions": []} for i in range(MAX_CHECK_MODULES + 1)
            ]
        }
        response = await client.post("/checks", json=many)
        assert response.status_code == 422
        assert "length <= 200" in response.json()["error"]["message"]

        bad_lines = {
            "modules": [
                {
                    "path": "a.py",
                    "module": "x = 1\n",
                    "functions": [{"name": "f", "start_line": 3, "end_line": 4}],
                }
            ]
        }
        response = await client.post("/checks", json=bad_lines)
        assert response.status_code == 422
        assert "not in the module's 2 lines" in response.json()["error"]["message"]

        response = await client.post("/checks", json={"modules": [], "extra": 1})
        assert response.status_code == 422

        response = await client.post("/checks", json={"modules": []})
        assert response.status_code == 200
        assert response.json() == {"modules": [], "rules": {}}


async def test_the_route_keeps_the_gateways_access_rules() -> None:
    async with gateway_client(checks_only_settings(codereview_api_keys="k1")) as client:
        response = await client.post("/checks", json={"modules": []})
        assert response.status_code == 401
        assert response.headers.get("x-request-id")
        response = await client.post("/checks", json={"modules": []}, headers={"authorization": "Bearer k1"})
        assert response.status_code == 200
        metrics = (await client.get("/metrics", headers={"authorization": "Bearer k1"})).text
        assert 'path="/checks"' in metrics


def test_rule_info_of_every_kind() -> None:
    described = {"C901": ("complex-structure", "`{name}` is too complex ({complexity} > {max_complexity})")}
    info = rule_info("C901", described)
    assert info.name == "complex-structure"
    assert info.summary == "… is too complex (… > …)."
    assert info.url == "https://docs.astral.sh/ruff/rules/complex-structure/"
    assert rule_info("model", described).name == "model"
    assert (
        rule_info("ty/missing-argument", described).url
        == "https://docs.astral.sh/ty/reference/rules/#missing-argument"
    )
    assert rule_info("invalid-syntax", described).url is None
    assert rule_info("ZZZ999", described).summary == "ruff's rule ZZZ999."
