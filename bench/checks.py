"""POST /checks on a stdlib-sized tree: every module of the standard library, in batches of 200.

What a scan costs the gateway: wall time per batch and in all, the CPU ruff used (its processes,
from the kernel's accounting of children) and the functions and findings answered. The gateway's
ModuleChecks is called in this process (no HTTP: the body's JSON is not what is measured), with
the gateway's RuffChecker (one ruff per core at most). `--batch=N` changes the batch size.
"""

from __future__ import annotations

import ast
import asyncio
import resource
import time

from gateway.batch import ModuleChecks
from gateway.checks import RuffChecker
from review_contract.checks import MAX_CHECK_MODULES, CheckedFunction, ChecksRequest, ModuleToCheck
from review_contract.shapes import MAX_MODULE_BYTES
from tests.analyzer.helpers import stdlib_files


def _functions(text: str) -> list[CheckedFunction]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # lib2to3's test data and the like: no functions
        return []
    return [
        CheckedFunction(
            name=node.name,
            start_line=min([node.lineno, *(d.lineno for d in node.decorator_list)]),
            end_line=node.end_lineno or node.lineno,
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def _run(batch: int) -> None:
    modules: list[ModuleToCheck] = []
    for path, data in stdlib_files().items():
        if len(data) > MAX_MODULE_BYTES:
            continue
        text = data.decode("utf-8", errors="replace")
        modules.append(ModuleToCheck(path=path, module=text, functions=_functions(text)))
    functions = sum(len(m.functions) for m in modules)
    print(f"{len(modules)} modules, {functions} functions, batches of {batch}")
    checks = ModuleChecks(RuffChecker())
    await checks.check(ChecksRequest(modules=modules[:5]))  # ruff's rule list, imports: warm
    walls: list[float] = []
    answered = findings = errors = 0
    ruff_before, own_before = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for first in range(0, len(modules), batch):
        begun = time.perf_counter()
        answer = await checks.check(ChecksRequest(modules=modules[first : first + batch]))
        walls.append(time.perf_counter() - begun)
        errors += sum(1 for m in answer.modules if m.error)
        answered += sum(len(m.functions) for m in answer.modules)
        findings += sum(len(f.findings) for m in answer.modules for f in m.functions)
    wall = time.perf_counter() - started
    ruff, own = _cpu(resource.RUSAGE_CHILDREN) - ruff_before, _cpu(resource.RUSAGE_SELF) - own_before
    print(
        f"all: {wall:.1f} s wall, ruff {ruff:.1f} s CPU, the gateway's mapping {own:.1f} s CPU; "
        f"{len(walls)} batches, each "
        f"{min(walls):.2f}-{max(walls):.2f} s (mean {sum(walls) / len(walls):.2f} s); "
        f"{answered} functions with findings, {findings} findings, {errors} modules not checked"
    )


def main(argv: list[str]) -> None:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    asyncio.run(_run(int(options.get("batch", MAX_CHECK_MODULES))))
