"""`POST /checks`: the deterministic checks of whole modules at once, for scans.

Each function gets exactly the findings a review in context gives it (gateway/checks.py
`function_suggestions`, `context_checks`; gateway/findings.py `findings_of`), but ruff runs once
per group of modules that share their lint settings instead of once per function: the modules
are written under their repository paths into a fresh temporary folder, and ruff, with the same
isolated flags as a review's run, reads only the files named to it there.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from gateway.checks import (
    LINE_END,
    ChecksFailedError,
    RuffChecker,
    RuffFinding,
    RuffRun,
    context_checks,
    function_suggestions,
    lint_run,
)
from gateway.errors import InvalidInputError
from gateway.findings import MODEL_RULE, findings_of
from gateway.metrics import record_checked_modules
from gateway.rules import plain_message
from review_contract import MAX_TYPE_FINDINGS, Finding, LintSettings, ReviewContext, TypeFinding
from review_contract.checks import (
    CheckedFunction,
    ChecksRequest,
    ChecksResponse,
    FunctionFindings,
    ModuleFindings,
    ModuleToCheck,
    RuleInfo,
)
from servicekit.text import printable

log = logging.getLogger("gateway.batch")

SYNTAX_RULE = "invalid-syntax"
_RUFF_DOCS = "https://docs.astral.sh/ruff/rules/{name}/"
_TY_DOCS = "https://docs.astral.sh/ty/reference/rules/#{name}"
_PLACEHOLDER = re.compile(r"`?\{[^{}]*\}`?")
_INDENT = re.compile(r"[ \t\f]*")


@dataclass
class _Module:
    """One module of the request on its way through: where it is written, what ruff found in it."""

    given: ModuleToCheck
    # Its path in the temporary folder (the repository path; `.py` added to one without it).
    file: str = ""
    # The settings ruff judges it by: the repository's, less selectors this ruff does not have.
    lint: LintSettings | None = None
    found: list[RuffFinding] = field(default_factory=list)
    error: str | None = None


class ModuleChecks:
    """Answers `POST /checks` with the gateway's RuffChecker (its concurrency and timeout)."""

    def __init__(self, checker: RuffChecker, temp_dir: str | None = None) -> None:
        self.checker = checker
        # Where the per-request folders are made (None: the system's temporary folder).
        self.temp_dir = temp_dir

    async def check(self, request: ChecksRequest) -> ChecksResponse:
        """Each module's functions with their findings, and every rule those findings name.

        Raises InvalidInputError (422) when a function's lines are not in its module. A module
        that cannot be checked (an unsafe or repeated path, ruff failing or timing out on it) gets
        its `error` and no findings; the other modules are still answered. The temporary folder is
        removed whatever happens, cancellation included.
        """
        for given in request.modules:
            _validate_lines(given)
        modules = [_Module(given) for given in request.modules]
        _place(modules)
        try:
            for module in modules:
                if module.error is None and module.given.lint is not None:
                    module.lint = await self.checker.usable_lint(module.given.lint)
        except ChecksFailedError as exc:
            for module in modules:
                module.error = module.error or f"not checked: {exc}"
        root = tempfile.mkdtemp(prefix="gateway-checks-", dir=self.temp_dir)
        try:
            real_root = await asyncio.to_thread(_write, root, [m for m in modules if m.error is None])
            await self._lint(real_root, [m for m in modules if m.error is None])
        finally:
            # Not in a thread: a cancelled request must still leave nothing behind.
            shutil.rmtree(root, ignore_errors=True)
        answered = await asyncio.to_thread(_answers, modules)
        failed = sum(1 for m in answered if m.error is not None)
        record_checked_modules(ok=len(answered) - failed, failed=failed)
        return ChecksResponse(modules=answered, rules=await self._rules(answered))

    async def _lint(self, root: str, modules: list[_Module]) -> None:
        """ruff once per group of modules with the same settings, the groups side by side."""
        groups: dict[RuffRun, list[_Module]] = {}
        for module in modules:
            groups.setdefault(lint_run(module.lint, filename=""), []).append(module)
        await asyncio.gather(*(self._run_group(root, members, run) for run, members in groups.items()))

    async def _run_group(self, root: str, members: list[_Module], run: RuffRun) -> None:
        """ruff's findings for `members`, shared out by file.

        As a single review does, settings ruff refuses are replaced by our default (the
        repository's settings still filter what is reported). A run that still fails is split in
        two until the module it fails on stands alone: that one gets the error.
        """
        try:
            found = await self.checker.files_findings(root, [m.file for m in members], run)
        except ChecksFailedError as exc:
            default = lint_run(None, filename="")
            if run != default:
                log.warning(
                    "ruff refused the configuration of %s; the default rules judge these modules",
                    printable(", ".join(sorted({repr(m.lint.source) for m in members if m.lint}))[:500]),
                )
                await self._run_group(root, members, default)
            elif len(members) > 1:
                half = len(members) // 2
                await asyncio.gather(
                    self._run_group(root, members[:half], run), self._run_group(root, members[half:], run)
                )
            else:
                members[0].error = f"ruff could not check this module: {exc}"
            return
        # ruff names each file by its absolute path, `root` being the real one.
        by_file = {f"{root}/{m.file}": m for m in members}
        for finding in found:
            module = by_file.get(finding.filename or "")
            if module is None:
                log.warning(
                    "ruff reported a file it was not given: %s", printable(repr(finding.filename)[:300])
                )
                continue
            module.found.append(finding)

    async def _rules(self, modules: list[ModuleFindings]) -> dict[str, RuleInfo]:
        named = {f.rule for m in modules for fn in m.functions for f in fn.findings}
        if not named:
            return {}
        try:
            described = await self.checker.described()
        except ChecksFailedError:
            described = {}
        return {rule: rule_info(rule, described) for rule in sorted(named)}


def rule_info(rule: str, described: dict[str, tuple[str, str]]) -> RuleInfo:
    """What `rule` is: ruff's name, summary and page for its codes (`described`, as
    `RuffChecker.described` lists them), the type checker's rules `ty/<name>`, the model's rule."""
    if rule == MODEL_RULE:
        return RuleInfo(name=MODEL_RULE, summary="A suggestion of the review model.")
    if rule == SYNTAX_RULE:
        return RuleInfo(name=SYNTAX_RULE, summary="The code does not parse as Python.")
    if rule.startswith("ty/"):
        name = rule.removeprefix("ty/")
        return RuleInfo(
            name=name,
            summary=f"The type checker ty's rule {name}.",
            url=_TY_DOCS.format(name=name),
        )
    name, summary = described.get(rule, ("", ""))
    if not name:
        return RuleInfo(name=rule, summary=f"ruff's rule {rule}.")
    return RuleInfo(
        name=name,
        # ruff's summaries hold its message's placeholders ("`{name}` is too complex").
        summary=plain_message(_PLACEHOLDER.sub("…", summary)) or f"ruff's rule {rule}.",
        url=_RUFF_DOCS.format(name=name),
    )


def _validate_lines(module: ModuleToCheck) -> None:
    lines = len(LINE_END.split(module.module))
    for function in module.functions:
        if not function.start_line <= function.end_line <= lines:
            raise InvalidInputError(
                f"modules[{printable(repr(module.path)[:200])}]: function "
                f"{printable(repr(function.name)[:200])} has lines "
                f"{function.start_line}-{function.end_line}, not in the module's {lines} lines"
            )


def unsafe_path(path: str) -> str | None:
    """Why `path` cannot be written under a folder as it stands, or None: it must be relative,
    without NUL, empty, `.` or `..` parts (so it names a file inside the folder, never outside)."""
    if "\0" in path:
        return "the path holds a NUL character"
    if path.startswith("/"):
        return "the path is absolute"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "the path has an empty, '.' or '..' part"
    return None


def _place(modules: list[_Module]) -> None:
    """Each module's file in the folder, or its error: an unsafe path, or one taken already."""
    taken: set[str] = set()
    for module in modules:
        path = module.given.path
        problem = unsafe_path(path)
        if problem is not None:
            module.error = f"not checked: {problem}"
            continue
        # As a review in context names it: ruff lints only Python files by their suffix.
        file = path if path.endswith((".py", ".pyi")) else f"{path}.py"
        if file in taken:
            module.error = "not checked: the same path came earlier in this request"
            continue
        taken.add(file)
        module.file = file


def _write(root: str, modules: list[_Module]) -> str:
    """Each module's text under `root` at its file, byte for byte (no newline translation);
    returns `root`'s real path (its links resolved), as ruff names the files."""
    real = Path(root).resolve()
    for module in modules:
        target = real / module.file
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("xb") as out:
                out.write(module.given.module.encode("utf-8"))
        except (OSError, UnicodeEncodeError) as exc:
            module.error = f"not checked: the module could not be written ({type(exc).__name__})"
    return str(real)


def _answers(modules: list[_Module]) -> list[ModuleFindings]:
    """Every module's answer, each function's findings as a review in context words them."""
    out: list[ModuleFindings] = []
    for module in modules:
        if module.error is not None:
            out.append(ModuleFindings(path=module.given.path, error=module.error))
            continue
        functions = [
            FunctionFindings(name=function.name, findings=findings)
            for function, findings in _function_findings(module)
            if findings
        ]
        out.append(ModuleFindings(path=module.given.path, functions=functions))
    return out


def _function_findings(module: _Module) -> list[tuple[CheckedFunction, list[Finding]]]:
    text = module.given.module
    starts = [0, *(match.end() for match in LINE_END.finditer(text))]
    # ruff's findings by line, so each function looks only at its own (a module may hold thousands).
    order = sorted(range(len(module.found)), key=lambda i: module.found[i].location.row)
    rows = [module.found[i].location.row for i in order]
    out: list[tuple[CheckedFunction, list[Finding]]] = []
    for function in module.given.functions:
        low = bisect.bisect_left(rows, function.start_line)
        high = bisect.bisect_right(rows, function.end_line)
        # In ruff's order: the wording of a group takes its first finding's.
        found = [module.found[i] for i in sorted(order[low:high])]
        types = _types_on(module.given.types, function)
        if not found and not types:
            continue
        code = function_code(text, starts, function)
        context = ReviewContext(
            path=module.given.path,
            module=text,
            start_line=function.start_line,
            end_line=function.end_line,
            lint=module.lint,
            types=types,
        )
        checks = context_checks(function_suggestions(found, code, context), code, context)
        out.append((function, findings_of(checks, [], code, context)))
    return out


def _types_on(types: list[TypeFinding] | None, function: CheckedFunction) -> list[TypeFinding] | None:
    """The type findings on the function's lines, as many as a review in context is sent."""
    if types is None:
        return None
    return [t for t in types if function.start_line <= t.line <= function.end_line][:MAX_TYPE_FINDINGS]


def function_code(text: str, starts: list[int], function: CheckedFunction) -> str:
    """The function's code as the analyzer sends it for review: its lines from the first
    non-blank character of the first, each later line less the first line's indentation."""
    begin = starts[function.start_line - 1] if function.start_line <= len(starts) else len(text)
    end = starts[function.end_line] if function.end_line < len(starts) else len(text)
    lines = text[begin:end]
    indent = _INDENT.match(lines)
    prefix = indent.group(0) if indent else ""
    source = lines[len(prefix) :].rstrip("\r\n")
    if not prefix:
        return source
    return re.sub(r"(\r\n|\r|\n)" + re.escape(prefix), r"\1", source)
