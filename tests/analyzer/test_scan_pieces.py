"""One piece of a scan checked (analyzer.scan.pieces): real parsing in the parser's worker processes,
the real lint configuration, the real type checker, and a fake gateway on loopback (real HTTP)
that records the exact requests and answers what each test scripts."""

from __future__ import annotations

import asyncio
import itertools
import json
import keyword
import resource
import string
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from analyzer.context import ContextBuilder
from analyzer.errors import GatewayFailed, GatewayTimeout
from analyzer.jobs import JobStore
from analyzer.lintconfig import LintConfigs
from analyzer.locate import SnapshotIndex
from analyzer.parsing import ParseBudget, ParserPool
from analyzer.review import GatewayClient
from analyzer.scan.model import Piece
from analyzer.scan.pieces import MODEL_RULE, GatewayPieceChecker
from analyzer.scan.service import ScanService
from analyzer.settings import Settings
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from analyzer.typecheck import TypeCheckBudget, TypeChecks
from jobs_contract import Snapshot, ensure_jetstream
from review_contract import MAX_MODULE_BYTES
from review_contract.scan import ScanFinding, ScanRequest, SkippedFile
from tests.analyzer.stores import job_stores, put_ready_job
from tests.support.asgi import read_body, run_lifespan
from tests.support.fake_gateway import completion
from tests.support.servers import service_process, serving

BUDGET = ParseBudget(max_bytes=2_000_000, cpu_s=5, memory_bytes=1_000_000_000)

MOD = '''\
import functools


def helper(items=[]):
    return items


@functools.cache
def cached(
    value,
):
    return helper(value)


class Shop:
    """A shop."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def title(self) -> str:
        return self.name

    @title.setter
    def title(self, value: str) -> None:
        self.name = value

    def total(self, prices: list[int]) -> int:
        def add(a: int, b: int) -> int:
            return a + b

        return functools.reduce(add, prices, 0) + needs(1)


def needs(a: int, b: int) -> int:
    return a + b
'''
UTIL = "def util() -> None:\n    print('hi')\n"
PYPROJECT = b'[tool.ruff]\nline-length = 100\n[tool.ruff.lint]\nselect = ["E", "F", "B"]\nignore = ["E501"]\n'
KEY = "octo/shop@" + "0" * 40


def loaded_snapshot(files: dict[str, bytes], *, configs: dict[str, bytes] | None = None) -> LoadedSnapshot:
    """A snapshot whose index refuses to parse in this process: every parse must go to the workers."""

    def in_process(data: bytes, path: str) -> Any:
        raise AssertionError(f"{path} parsed in the analyzer's own process")

    snapshot = Snapshot(
        owner="octo",
        repo="shop",
        commit_sha="0" * 40,
        files=files,
        configs=configs or {},
        skipped={"gone.py": "over the fetcher's file limit"},
    )
    return LoadedSnapshot(
        key=KEY, snapshot=snapshot, index=SnapshotIndex(files, "octo/shop", parse=in_process), size=1
    )


@dataclass
class FakeGateway:
    """`POST /checks` answered by `checks(request)` and `POST /v1/chat/completions` by `review`,
    every request recorded; `in_flight` / `most_in_flight` count the reviews under way."""

    checks: Callable[[dict[str, Any]], dict[str, Any]] = lambda request: {"modules": []}
    review: Callable[[dict[str, Any]], dict[str, Any]] = lambda request: completion('{"suggestions": []}')
    status: int = 200
    raw: bytes | None = None
    delay: float = 0.0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        body = json.loads(await read_body(receive))
        self.requests.append((scope["path"], body))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.raw is not None:
                answer = self.raw
            elif scope["path"] == "/checks":
                answer = json.dumps(self.checks(body)).encode()
            elif scope["path"] == "/v1/chat/completions":
                answer = json.dumps(self.review(body)).encode()
            else:
                answer, self.status = b'{"error": {"message": "not found"}}', 404
        finally:
            self.in_flight -= 1
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def sent(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in self.requests if where == path]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeGateway, GatewayClient]]:
    gateway = FakeGateway()
    async with (
        serving(gateway) as url,
        GatewayClient(url + "/v1", model="code-review", api_key="k", timeout_s=2.0) as client,
    ):
        yield gateway, client


@pytest.fixture
def parser() -> Any:
    pool = ParserPool(BUDGET, workers=2)
    yield pool
    pool.close()


def finding(rule: str, line: int, message: str = "a finding", severity: str = "warning") -> dict[str, Any]:
    return {
        "rule": rule,
        "message": message,
        "severity": severity,
        "fingerprint": f"{rule}{line}",
        "line": line,
    }


async def test_a_piece_sends_each_module_with_its_functions_lint_and_types_and_reports_what_comes_back(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    files = {
        "pkg/__init__.py": b"",
        "pkg/mod.py": MOD.encode(),
        "src/lib/util.py": UTIL.encode(),
        "bad.py": b"def broken(:\n    pass\n",
        "latin.py": b"def f():\n    return '\xe9t\xe9'\n",
        "big.py": b"X = 1\n" + b"#" * MAX_MODULE_BYTES,
        "stub.pyi": b"def f() -> None: ...\n",
    }
    loaded = loaded_snapshot(files, configs={"pyproject.toml": PYPROJECT})
    gateway.checks = lambda request: {
        "modules": [
            {
                "path": "pkg/mod.py",
                "functions": [{"name": "pkg.mod.helper", "findings": [finding("B006", 4)]}],
            },
            {
                "path": "src/lib/util.py",
                "functions": [{"name": "lib.util.util", "findings": [finding("T201", 2)]}],
            },
        ],
        "rules": {
            "B006": {
                "name": "mutable-argument-default",
                "summary": "Mutable default.",
                "url": "https://x/b006",
            },
            "T201": {"name": "print", "summary": "print found."},
        },
    }
    typechecks = TypeChecks(TypeCheckBudget(timeout_s=60, memory_bytes=500_000_000, threads=2))
    try:
        checker = GatewayPieceChecker(
            parser=parser, gateway=client, typechecks=typechecks, typecheck_wait_s=60
        )
        piece = Piece(
            scan_id="s1",
            index=0,
            job_id="j1",
            paths=[*files, "gone.py", "pkg/mod.py"],  # named twice: checked once
        )
        result = await checker.check(piece, loaded, None)
    finally:
        await typechecks.aclose()

    (request,) = gateway.sent("/checks")
    modules = {m["path"]: m for m in request["modules"]}
    assert sorted(modules) == ["pkg/mod.py", "src/lib/util.py"]  # __init__.py defines no function
    mod = modules["pkg/mod.py"]
    assert mod["module"] == MOD
    assert mod["functions"] == [
        {"name": "pkg.mod.helper", "start_line": 4, "end_line": 5},
        {"name": "pkg.mod.cached", "start_line": 8, "end_line": 12},  # from its decorator
        {"name": "pkg.mod.Shop.__init__", "start_line": 18, "end_line": 19},
        {"name": "pkg.mod.Shop.title", "start_line": 21, "end_line": 27},  # getter and setter: one name
        {"name": "pkg.mod.Shop.total", "start_line": 29, "end_line": 33},  # `add` inside is part of it
        {"name": "pkg.mod.needs", "start_line": 36, "end_line": 37},
    ]
    lint = LintConfigs({"pyproject.toml": PYPROJECT}).for_path("pkg/mod.py")
    assert lint is not None
    assert mod["lint"] == msgspec.to_builtins(lint)
    assert mod["lint"]["select"] == ["E", "F", "B"]
    # The whole snapshot's type check: `needs(1)` misses an argument.
    assert [(t["rule"], t["line"]) for t in mod["types"]] == [("missing-argument", 33)]
    assert modules["src/lib/util.py"]["functions"] == [
        {"name": "lib.util.util", "start_line": 1, "end_line": 2}
    ]
    assert modules["src/lib/util.py"]["types"] == []

    assert result.findings == [
        ScanFinding(
            rule="B006", message="a finding", severity="warning", fingerprint="B0064",
            path="pkg/mod.py", function="pkg.mod.helper", line=4,
        ),
        ScanFinding(
            rule="T201", message="a finding", severity="warning", fingerprint="T2012",
            path="src/lib/util.py", function="lib.util.util", line=2,
        ),
    ]  # fmt: skip
    assert set(result.rules) == {"B006", "T201"}
    assert result.rules["B006"].url == "https://x/b006"
    assert (result.files, result.functions) == (3, 7)  # __init__.py, mod.py (6), util.py (1)
    reasons = {s.path: s.reason for s in result.skipped}
    assert sorted(reasons) == ["bad.py", "big.py", "gone.py", "latin.py", "stub.pyi"]
    assert reasons["bad.py"].startswith("a syntax error, line 1: ")
    assert reasons["latin.py"].startswith("not text: ")
    assert "MAX_MODULE_BYTES" in reasons["big.py"]
    assert reasons["gone.py"] == "not in the snapshot: over the fetcher's file limit"
    assert reasons["stub.pyi"].startswith("not Python")
    assert (result.functions_asked, result.tokens_used, result.budget_exhausted) == (0, 0, False)
    assert not gateway.sent("/v1/chat/completions")  # a checks-only piece never asks the model


async def test_a_pull_request_piece_reports_only_the_functions_its_changed_lines_touch(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    loaded = loaded_snapshot({"pkg/mod.py": MOD.encode(), "src/lib/util.py": UTIL.encode()})
    checker = GatewayPieceChecker(parser=parser, gateway=client)
    # Line 5 (helper's body), line 13-16 (between functions: the class line and docstring), 33 (total).
    lines = {"pkg/mod.py": [(5, 5), (14, 16), (33, 33)], "src/lib/util.py": []}
    piece = Piece(scan_id="s", index=1, job_id="j", paths=["pkg/mod.py", "src/lib/util.py"], lines=lines)
    result = await checker.check(piece, loaded, None)
    (request,) = gateway.sent("/checks")
    (module,) = request["modules"]
    assert module["path"] == "pkg/mod.py"
    assert [f["name"] for f in module["functions"]] == ["pkg.mod.helper", "pkg.mod.Shop.total"]
    assert (result.files, result.functions, result.skipped) == (1, 2, [])

    # No changed line in any function: nothing is sent at all.
    gateway.requests.clear()
    piece = Piece(scan_id="s", index=2, job_id="j", paths=["pkg/mod.py"], lines={"pkg/mod.py": [(1, 2)]})
    result = await checker.check(piece, loaded, None)
    assert gateway.requests == []
    assert (result.files, result.functions, result.findings) == (1, 0, [])


async def test_hostile_files_are_skipped_within_bounded_time_and_memory(
    fake: tuple[FakeGateway, GatewayClient],
) -> None:
    gateway, client = fake
    alnum = string.ascii_letters + string.digits
    names = (
        n
        for n in map("".join, itertools.product(string.ascii_letters, alnum, alnum))
        if not keyword.iskeyword(n)
    )
    many_defs = "".join(f"def {n}():0\n" for n in itertools.islice(names, 75_000)).encode()  # 900 kB
    assert len(many_defs) < MAX_MODULE_BYTES
    files = {
        "huge.py": b"X = [" + b"1, " * 3_000_000 + b"]\n",  # 9 MB
        "nested.py": b"X = " + b"(" * 200_000 + b")" * 200_000 + b"\n",
        "deep.py": b"".join(b" " * i + b"def f():\n" for i in range(150)) + b" " * 150 + b"pass\n",
        "defs.py": many_defs,
        "fine.py": b"def fine():\n    return 1\n",
    }
    loaded = loaded_snapshot(files)
    budget = ParseBudget(max_bytes=2_000_000, cpu_s=2, memory_bytes=400_000_000)
    pool = ParserPool(budget, workers=2)
    try:
        checker = GatewayPieceChecker(parser=pool, gateway=client)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        result = await checker.check(Piece(scan_id="s", index=0, job_id="j", paths=list(files)), loaded, None)
        elapsed = time.monotonic() - started
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    finally:
        pool.close()
    reasons = {s.path: s.reason for s in result.skipped}
    assert sorted(reasons) == ["deep.py", "defs.py", "huge.py", "nested.py"]
    assert "MAX_MODULE_BYTES" in reasons["huge.py"]
    assert (
        reasons["defs.py"]
        == "75000 functions: more than 5000 in one module (a generated file is not reviewed)"
    )
    assert reasons["nested.py"].startswith(("a syntax error", "does not parse", "over the parse budget"))
    assert reasons["deep.py"].startswith(("a syntax error", "does not parse"))
    (request,) = gateway.sent("/checks")
    assert [m["path"] for m in request["modules"]] == ["fine.py"]
    assert elapsed < 30
    assert grown_kb < 200_000  # the analyzer's own process: the trees live and die in the workers


@dataclass
class Budget:
    """A scan's model budget of `functions` functions, recording what was spent."""

    functions: int
    taken: int = 0
    spent: list[int] = field(default_factory=list)

    async def take(self) -> bool:
        if self.taken >= self.functions:
            return False
        self.taken += 1
        return True

    async def spend(self, tokens: int) -> None:
        self.spent.append(tokens)


def model_review(request: dict[str, Any]) -> dict[str, Any]:
    context = request["review_context"]
    content = {
        "suggestions": ["Say what it returns."],
        "findings": [
            finding("B006", context["start_line"]),  # a check: /checks reports it, not the review
            {
                **finding(MODEL_RULE, context["start_line"], "Say what it returns.", "note"),
                "path": context["path"],
            },
        ],
    }
    answer = completion(json.dumps(content))
    answer["usage"] = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    return answer


async def test_a_model_piece_asks_the_model_within_the_budget_at_most_two_at_once(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    gateway.review = model_review
    gateway.delay = 0.05
    loaded = loaded_snapshot({"pkg/mod.py": MOD.encode()}, configs={"pyproject.toml": PYPROJECT})
    checker = GatewayPieceChecker(
        parser=parser, gateway=client, context=ContextBuilder(), model_concurrency=2
    )
    budget = Budget(functions=4)
    piece = Piece(scan_id="s", index=0, job_id="j", paths=["pkg/mod.py"], mode="model")
    result = await checker.check(piece, loaded, budget)

    reviews = gateway.sent("/v1/chat/completions")
    assert len(reviews) == 4
    assert gateway.most_in_flight == 2
    asked = sorted((r["review_context"]["start_line"], r["review_context"]["end_line"]) for r in reviews)
    assert asked == [(4, 5), (8, 12), (18, 19), (21, 27)]  # the first four functions, in line order
    helper = next(r for r in reviews if r["review_context"]["start_line"] == 4)
    assert helper["model"] == "code-review"
    assert helper["messages"] == [{"role": "user", "content": "def helper(items=[]):\n    return items"}]
    assert helper["review_context"]["module"] == MOD
    assert helper["review_context"]["path"] == "pkg/mod.py"
    assert helper["review_context"]["lint"]["select"] == ["E", "F", "B"]
    method = next(r for r in reviews if r["review_context"]["start_line"] == 18)
    assert method["messages"][0]["content"] == "def __init__(self, name: str) -> None:\n    self.name = name"
    assert (result.functions_asked, result.tokens_used, result.budget_exhausted) == (4, 28, True)
    assert budget.spent == [7, 7, 7, 7]
    model = [f for f in result.findings if f.rule == MODEL_RULE]
    assert sorted((f.function, f.line, f.severity) for f in model) == [
        ("pkg.mod.Shop.__init__", 18, "note"),
        ("pkg.mod.Shop.title", 21, "note"),
        ("pkg.mod.cached", 8, "note"),
        ("pkg.mod.helper", 4, "note"),
    ]
    assert all(f.rule == MODEL_RULE for f in result.findings)  # the review's B006 is not repeated
    assert result.rules[MODEL_RULE].name == MODEL_RULE
    assert len(gateway.sent("/checks")) == 1  # every function still gets its checks

    # Without a budget, every function is asked.
    gateway.requests.clear()
    result = await checker.check(piece, loaded, None)
    assert (result.functions_asked, result.tokens_used, result.budget_exhausted) == (6, 42, False)


async def test_a_budget_spent_before_the_piece_leaves_every_function_to_the_checks(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    loaded = loaded_snapshot({"pkg/mod.py": MOD.encode()})
    checker = GatewayPieceChecker(parser=parser, gateway=client)
    piece = Piece(scan_id="s", index=0, job_id="j", paths=["pkg/mod.py"], mode="model")
    result = await checker.check(piece, loaded, Budget(functions=0))
    assert gateway.sent("/v1/chat/completions") == []
    assert (result.functions_asked, result.budget_exhausted, result.functions) == (0, True, 6)


async def test_modules_go_in_batches_each_within_the_request_bound(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    files = {f"m{i}.py": f"def f{i}():\n    return {'0' * 300}\n".encode() for i in range(10)}
    loaded = loaded_snapshot(files)
    checker = GatewayPieceChecker(parser=parser, gateway=client, request_bytes=1_000)
    result = await checker.check(Piece(scan_id="s", index=0, job_id="j", paths=list(files)), loaded, None)
    requests = gateway.sent("/checks")
    assert len(requests) == 4  # three modules of ~330 characters a request
    assert sorted(m["path"] for r in requests for m in r["modules"]) == sorted(files)
    assert (result.files, result.functions) == (10, 10)


async def test_a_module_the_gateway_could_not_check_is_skipped_with_its_reason(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    gateway.checks = lambda request: {
        "modules": [
            {"path": "pkg/mod.py", "error": "ruff failed on it"},
            {"path": "elsewhere.py", "functions": [{"name": "x", "findings": [finding("E1", 1)]}]},
            {"path": "src/lib/util.py", "functions": [{"name": "not.sent", "findings": [finding("E1", 1)]}]},
        ]
    }
    loaded = loaded_snapshot({"pkg/mod.py": MOD.encode(), "src/lib/util.py": UTIL.encode()})
    checker = GatewayPieceChecker(parser=parser, gateway=client)
    piece = Piece(scan_id="s", index=0, job_id="j", paths=["pkg/mod.py", "src/lib/util.py"])
    result = await checker.check(piece, loaded, None)
    assert result.skipped == [
        SkippedFile(path="pkg/mod.py", reason="not checked by the gateway: ruff failed on it")
    ]
    assert result.findings == []  # names it was not sent are not taken
    assert (result.files, result.functions) == (1, 1)


@pytest.mark.parametrize(
    ("status", "raw", "delay", "error", "said"),
    [
        (500, b'{"error": {"message": "ruff is gone"}}', 0.0, GatewayFailed, "HTTP 500: ruff is gone"),
        (504, b'{"error": {"message": "slow"}}', 0.0, GatewayTimeout, "HTTP 504"),
        (200, b"<html>not json</html>", 0.0, GatewayFailed, "not a ChecksResponse"),
        (200, b'{"modules": 3}', 0.0, GatewayFailed, "not a ChecksResponse"),
        (200, b'{"modules": []}', 3.0, GatewayTimeout, "did not answer in time"),
    ],
)
async def test_a_failing_gateway_fails_the_piece_with_a_clear_error(
    fake: tuple[FakeGateway, GatewayClient],
    parser: ParserPool,
    status: int,
    raw: bytes,
    delay: float,
    error: type[Exception],
    said: str,
) -> None:
    gateway, client = fake
    gateway.status, gateway.raw, gateway.delay = status, raw, delay
    loaded = loaded_snapshot({"pkg/mod.py": MOD.encode()})
    checker = GatewayPieceChecker(parser=parser, gateway=client)
    with pytest.raises(error, match=said) as raised:
        await checker.check(Piece(scan_id="s", index=0, job_id="j", paths=["pkg/mod.py"]), loaded, None)
    assert type(raised.value) is error


async def test_an_unreachable_gateway_is_a_502(parser: ParserPool) -> None:
    async with serving(FakeGateway()) as url:
        pass  # the port is free again: nothing listens there
    async with GatewayClient(url + "/v1", model="code-review", api_key="k", timeout_s=60) as client:
        checker = GatewayPieceChecker(parser=parser, gateway=client)
        loaded = loaded_snapshot({"pkg/mod.py": MOD.encode()})
        with pytest.raises(GatewayFailed, match="could not be reached") as raised:
            await checker.check(Piece(scan_id="s", index=0, job_id="j", paths=["pkg/mod.py"]), loaded, None)
        assert type(raised.value) is GatewayFailed


async def test_a_finding_said_of_overlapping_functions_is_kept_once_for_the_narrowest(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool
) -> None:
    gateway, client = fake
    source = (
        "class C:\n"
        "    @property\n"
        "    def x(self):\n"
        "        return 1\n"
        "\n"
        "    def between(self, a=[]):\n"
        "        return a\n"
        "\n"
        "    @x.setter\n"
        "    def x(self, value):\n"
        "        pass\n"
    )
    same = finding("B006", 6)
    gateway.checks = lambda request: {
        "modules": [
            {
                "path": "c.py",
                "functions": [
                    {"name": "c.C.x", "findings": [same, finding("ARG002", 10)]},
                    {"name": "c.C.between", "findings": [same]},
                ],
            }
        ]
    }
    loaded = loaded_snapshot({"c.py": source.encode()})
    checker = GatewayPieceChecker(parser=parser, gateway=client)
    result = await checker.check(Piece(scan_id="s", index=0, job_id="j", paths=["c.py"]), loaded, None)
    (request,) = gateway.sent("/checks")
    assert request["modules"][0]["functions"] == [
        {"name": "c.C.x", "start_line": 2, "end_line": 11},
        {"name": "c.C.between", "start_line": 6, "end_line": 7},
    ]
    assert sorted((f.rule, f.function) for f in result.findings) == [
        ("ARG002", "c.C.x"),
        ("B006", "c.C.between"),
    ]


@pytest.mark.slow
async def test_a_piece_checked_by_the_real_gateway_gets_ruff_and_type_findings_once_each(
    parser: ParserPool, service_logs: Path
) -> None:
    # `python -m gateway` itself: its POST /checks runs ruff; no provider is asked (one that is
    # never called is named so that it starts).
    env = {"LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-never", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    loaded = loaded_snapshot({"pkg/mod.py": MOD.encode()}, configs={"pyproject.toml": PYPROJECT})
    typechecks = TypeChecks(TypeCheckBudget(timeout_s=60, memory_bytes=500_000_000, threads=2))
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as gateway:
        client = GatewayClient(f"{gateway.url}/v1", model="code-review", api_key="k", timeout_s=60)
        try:
            checker = GatewayPieceChecker(parser=parser, gateway=client, typechecks=typechecks)
            result = await checker.check(
                Piece(scan_id="s", index=0, job_id="j", paths=["pkg/mod.py"]), loaded, None
            )
        finally:
            await client.aclose()
            await typechecks.aclose()
    found = sorted((f.function, f.rule, f.line) for f in result.findings)
    # The repository selects E, F and B: the mutable default is B006; `needs(1)` misses an argument.
    assert ("pkg.mod.helper", "B006", 4) in found
    assert ("pkg.mod.Shop.total", "ty/missing-argument", 33) in found
    assert len({f.fingerprint for f in result.findings}) == len(result.findings)
    assert {f.rule for f in result.findings} <= set(result.rules)
    assert result.rules["B006"].name == "mutable-argument-default"
    assert (result.files, result.functions, result.skipped) == (1, 6, [])


def one_finding_a_function(request: dict[str, Any]) -> dict[str, Any]:
    """A /checks answer with one finding at the first line of every function it is sent."""
    return {
        "modules": [
            {
                "path": module["path"],
                "functions": [
                    {"name": f["name"], "findings": [finding("T1", f["start_line"], f["name"])]}
                    for f in module["functions"]
                ],
            }
            for module in request["modules"]
        ],
        "rules": {"T1": {"name": "test", "summary": "A function."}},
    }


@pytest.mark.nats
async def test_a_scan_through_the_engine_reports_every_function_of_every_piece_once(
    fake: tuple[FakeGateway, GatewayClient], parser: ParserPool, nats_url: str
) -> None:
    gateway, client = fake
    gateway.checks = one_finding_a_function
    files = {f"pkg/m{i}.py": MOD.replace("helper", f"helper{i}") for i in range(6)}
    files["src/lib/util.py"] = UTIL
    files["bad.py"] = "def broken(:\n"
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, files)
    settings = Settings(
        _env_file=None, nats_url=nats_url, analyzer_scan_workers=2, analyzer_scan_piece_files=2
    )
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        stores = await ensure_jetstream(js)
        snapshots = SnapshotCache(js, stores.repos, max_entries=2, max_bytes=100_000_000, parse=parser.parse)
        checker = GatewayPieceChecker.of(
            settings, parser=parser, gateway=client, context=None, typechecks=None
        )
        async with ScanService(
            connection, JobStore(js, stores.kv), snapshots, checker, settings, repos=stores.repos
        ) as scans:
            scan_id = (await scans.start(ScanRequest(job_id=job.job_id))).scan_id
            deadline = time.monotonic() + 60
            while (status := await scans.status(scan_id)).status not in ("completed", "failed"):
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.05)
            assert status.status == "completed", status
            found, cursor = [], ""
            while True:
                page = await scans.findings(scan_id, limit=10, cursor=cursor)
                found.extend(page.findings)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
    finally:
        await connection.close()
    expected = sorted(
        [
            (f"pkg/m{i}.py", f"pkg.m{i}.{name}")
            for i in range(6)
            for name in (f"helper{i}", "cached", "Shop.__init__", "Shop.title", "Shop.total", "needs")
        ]
        + [("src/lib/util.py", "lib.util.util")]
    )
    assert sorted((f.path, f.function) for f in found) == expected  # each once
    assert (status.counts.files, status.counts.functions, status.counts.skipped) == (7, 37, 1)
    assert [(s.path, s.reason.split(",")[0]) for s in status.skipped] == [("bad.py", "a syntax error")]
    assert sum(len(r["modules"]) for r in gateway.sent("/checks")) == 7
