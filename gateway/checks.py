"""Deterministic checks: ruff, fed the function (or its module) on standard input, mapped to short
plain suggestions.

A linter the Python world maintains finds the mechanical problems (missing hints and docstrings,
mutable defaults, bare excepts, `print` left in...) so they appear whatever the model says. Which
rules judge, and how each is worded, is gateway/rules.py.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import keyword
import logging
import os
import re
import textwrap
from dataclasses import dataclass, field

import msgspec

from gateway.rules import (
    CONCERNS,
    CONFIG,
    CORE,
    CORRECTNESS,
    IGNORED,
    NEVER_IN_CONTEXT,
    PEDANTIC,
    PREVIEW,
    RUFF_DEFAULT,
    SELECT,
    SOFT_BUILTINS,
    SYNTAX,
    TYPES,
    Rule,
    concern_of,
    plain_message,
    rule_for,
    selector_match,
)
from gateway.suggestions import Place, Suggestion
from review_contract import LintSettings, ReviewContext

log = logging.getLogger("gateway.checks")


class ChecksFailedError(Exception):
    """ruff itself failed (timed out, crashed, printed no report): the review has no checks."""


# Arguments that are never annotated or "unused" in a method lifted out of its class.
_IMPLICIT = {"self", "cls"}
_BACKTICKED = re.compile(r"`([^`]+)`")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_DEFAULT_OF = re.compile(r"([A-Za-z_]\w*)\s*(?::[^=,()]*)?=\s*$")
# A test states its expectations with assert and literal values: S101 and PLR2004 are right
# about other code, not about tests.
_TEST_ONLY = {"S101", "PLR2004"}
# "the unused argument a" but "the unused arguments a and b".
_PLURAL = re.compile(r"\b(argument|variable|import|name|value) \{names\}")
_TEST_FUNCTION = re.compile(r"^\s*(?:async\s+)?def\s+test", re.MULTILINE)


class _Location(msgspec.Struct):
    row: int
    column: int


class _Finding(msgspec.Struct):
    code: str | None
    message: str
    location: _Location
    # The file it is in, as ruff names it (absolute); None on standard input.
    filename: str | None = None


_FINDINGS = msgspec.json.Decoder(list[_Finding])


class _ListedRule(msgspec.Struct):
    code: str | None
    status: dict[str, object]
    name: str = ""
    summary: str = ""


_RULE_LIST = msgspec.json.Decoder(list[_ListedRule])


@dataclass
class _Group:
    rule: Rule
    template: str
    code: str
    names: list[str] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)


def join_names(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class _Run:
    """One ruff invocation: what it selects and ignores, its settings, and the file name it reports.

    `target_version` None: ruff's default; `preview`: ruff's preview rules and behaviours.
    """

    select: tuple[str, ...]
    ignore: tuple[str, ...]
    config: tuple[str, ...]
    filename: str = "function.py"
    target_version: str | None = "py314"
    preview: bool = True


_CUT_OUT = _Run(select=(SELECT, *PREVIEW), ignore=(*IGNORED, *PEDANTIC), config=CONFIG)
# A function shaped like a method is checked inside this class, so the rules judge it as one
# (no N807 on __init__, ARG002 rather than ARG001, D102 rather than D103).
_WRAPPER = "class Reviewed:\n"
_WRAPPER_INDENT = "    "


class RuffChecker:
    """Runs ruff as a subprocess, without blocking the event loop, on a function or its module."""

    def __init__(self, timeout: float = 15.0, concurrency: int | None = None) -> None:
        self.binary: str = importlib.import_module("ruff").find_ruff_bin()
        self.timeout = timeout
        # A burst of reviews must not fork a ruff per request at once: one per core is plenty.
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)
        self._known: frozenset[str] | None = None
        self._described: dict[str, tuple[str, str]] = {}

    async def known_rules(self) -> frozenset[str]:
        """The codes of the rules this ruff can select (removed and deprecated ones left out).

        Asked of ruff once (`ruff rule --all`); raises ChecksFailedError if it cannot say.
        """
        if self._known is None:
            process = await asyncio.create_subprocess_exec(
                self.binary,
                "rule",
                "--all",
                "--output-format",
                "json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                stdout, _ = await asyncio.wait_for(process.communicate(), self.timeout)
                listed = _RULE_LIST.decode(stdout)
            except (TimeoutError, msgspec.DecodeError):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise ChecksFailedError("ruff did not list its rules") from None
            self._known = frozenset(
                r.code for r in listed if r.code and any(k in r.status for k in ("Stable", "Preview"))
            )
            self._described = {r.code: (r.name, r.summary) for r in listed if r.code}
        return self._known

    async def described(self) -> dict[str, tuple[str, str]]:
        """Each rule's code -> (ruff's name for it, ruff's one-line summary); asked as `known_rules`.

        Raises ChecksFailedError if ruff cannot say.
        """
        await self.known_rules()
        return self._described

    async def findings(self, code: str, run: _Run = _CUT_OUT) -> list[_Finding]:
        """ruff's findings for `code`; raises ChecksFailedError (logged) if ruff itself fails."""
        # One argument, so a repository's path can never be read as an option.
        argv = [*self._flags(run), f"--stdin-filename={run.filename}", "-"]
        async with self._slots:
            return await self._run(code, argv)

    async def files_findings(self, root: str, files: list[str], run: _Run) -> list[_Finding]:
        """ruff's findings for `files` (paths relative to the folder `root`), in one ruff process
        started in `root` with `run`'s flags (`run.filename` unused); each finding names its file
        (absolute). Raises ChecksFailedError (logged) if ruff itself fails or takes too long."""
        # `--` first, so that a path can never be read as an option. Files named one by one: ruff
        # then checks each, whatever its default excludes (`build/`, `.venv/`...) would skip.
        argv = [*self._flags(run), "--", *files]
        async with self._slots:
            return await self._run(None, argv, cwd=root)

    def _flags(self, run: _Run) -> list[str]:
        """The command line of a ruff run, less what it reads: no configuration but `run`'s own."""
        return [
            self.binary,
            "check",
            "--isolated",
            "--no-cache",
            "--exit-zero",
            *(("--target-version", run.target_version) if run.target_version else ()),
            "--output-format",
            "json",
            "--preview" if run.preview else "--no-preview",
            "--select",
            ",".join(run.select),
            *(("--ignore", ",".join(run.ignore)) if run.ignore else ()),
            *[arg for setting in run.config for arg in ("--config", setting)],
        ]

    async def _run(self, code: str | None, argv: list[str], cwd: str | None = None) -> list[_Finding]:
        """ruff run with `argv`, fed `code` on standard input (None: it reads files)."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL if code is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(None if code is None else code.encode()), self.timeout
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            log.error("ruff took longer than %.0fs; reviewing without deterministic checks", self.timeout)
            raise ChecksFailedError(f"ruff took longer than {self.timeout:.0f}s") from None
        except BaseException:
            # Cancelled (the review failed or the client left): leave no ruff process behind.
            # It may have just ended on its own, and kill() then raises instead of cancelling.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            log.error("ruff failed (%s): %s", process.returncode, stderr.decode(errors="replace")[-500:])
            raise ChecksFailedError(f"ruff exited with {process.returncode}")
        try:
            return _FINDINGS.decode(stdout)
        except msgspec.DecodeError:
            log.error("ruff printed something that is not its JSON report: %r", stdout[:200])
            raise ChecksFailedError("ruff printed no JSON report") from None

    async def check(self, code: str) -> list[Suggestion]:
        """Short suggestions for `code` cut out of its module, one per concern, most important first.

        A function shaped like a method (indented, its first parameter `self`, or `cls` under
        `@classmethod`) is judged inside a class, as a method. Raises ChecksFailedError when ruff
        itself fails.
        """
        source = textwrap.dedent(code)
        if _method_shaped(code, source):
            wrapped = _WRAPPER + textwrap.indent(source, _WRAPPER_INDENT, lambda _: True)
            inside = [f for f in await self.findings(wrapped) if f.location.row > 1]
            return suggestions_from([_unwrapped(f) for f in inside], source)
        return suggestions_from(await self.findings(source), source)

    async def check_in_context(self, code: str, context: ReviewContext) -> list[Suggestion]:
        """Suggestions for `code`, the lines `context.start_line`.. of `context.module`, judged there.

        ruff reads the whole module (so its imports, globals, class and `noqa` comments count)
        under the repository's configuration (`context.lint`; our default without one), and only
        the findings on the function's lines are kept. Raises ChecksFailedError when ruff fails.
        """
        context = await self._usable(context)
        run = context_run(context)
        try:
            found = await self.findings(context.module, run)
        except ChecksFailedError:
            if context.lint is None:
                raise
            # The configuration still holds something this ruff refuses: the style is then ours.
            log.warning(
                "ruff refused the configuration of %r; the default rules judge this function",
                context.lint.source,
            )
            run = context_run(msgspec.structs.replace(context, lint=None))
            found = await self.findings(context.module, run)
        return function_suggestions(found, code, context)

    async def _usable(self, context: ReviewContext) -> ReviewContext:
        """`context` with the selectors this ruff does not know (or no longer has) left out, said once."""
        if context.lint is None:
            return context
        usable = await self.usable_lint(context.lint)
        return context if usable is context.lint else msgspec.structs.replace(context, lint=usable)

    async def usable_lint(self, lint: LintSettings) -> LintSettings:
        """`lint` with the selectors this ruff does not know (or no longer has) left out, said once
        (`lint` itself when it has none). Raises ChecksFailedError if ruff cannot list its rules."""
        known = await self.known_rules()
        unknown = [s for s in (*(lint.select or ()), *lint.extend_select) if not _usable(s, known)]
        if not unknown:
            return lint
        log.warning(
            "the configuration %r selects rules this ruff does not have, left out: %s",
            lint.source,
            ", ".join(repr(s) for s in unknown[:10]),
        )
        return msgspec.structs.replace(
            lint,
            select=None if lint.select is None else [s for s in lint.select if _usable(s, known)],
            extend_select=[s for s in lint.extend_select if _usable(s, known)],
        )


def function_suggestions(found: list[_Finding], code: str, context: ReviewContext) -> list[Suggestion]:
    """ruff's suggestions for `code`, the lines `context.start_line`.. of `context.module`, from
    `found`, ruff's findings in the whole module: those on the function's lines that the
    repository's settings report (`reported`), worded for `code`.

    The one mapping of a review in context and of `POST /checks` (gateway/batch.py).
    """
    span = function_span(code, context)
    kept = [
        _shifted(f, span.first - 1, span.indent)
        for f in found
        if span.first <= f.location.row <= span.last and reported(f.code or "invalid-syntax", context.lint)
    ]
    return suggestions_from(kept, code)


def context_checks(found: list[Suggestion], code: str, context: ReviewContext) -> list[Suggestion]:
    """A review in context's checks: ruff's suggestions (`found`) and the type checker's, most
    important first."""
    return sorted([*found, *type_suggestions(code, context)], key=lambda s: s.priority)


# The type checker's rules that ruff already says in context (F821 undefined names).
_SAID_BY_RUFF = frozenset({"unresolved-reference"})


def type_suggestions(code: str, context: ReviewContext) -> list[Suggestion]:
    """The type checker's findings on the function's lines (`code` is those lines, perhaps cut),
    one suggestion per distinct message, as bugs."""
    if not context.types:
        return []
    span = function_span(code, context)
    out: list[Suggestion] = []
    said: set[str] = set()
    for finding in context.types:
        if not span.first <= finding.line <= span.last or finding.rule in _SAID_BY_RUFF:
            continue
        text = plain_message(finding.message.splitlines()[0] if finding.message else finding.rule)
        if finding.rule == "missing-union-attribute" and "None" in text:
            text = text.removesuffix(".") + ": check that the value is not None before using it."
        if text in said:
            continue
        said.add(text)
        rule = f"ty/{finding.rule}"
        place = Place(
            rule=rule, line=finding.line - span.first + 1, column=max(1, finding.column - span.indent)
        )
        out.append(Suggestion(text=text, priority=CORRECTNESS, topic=rule, places=(place,)))
    return out


def _usable(selector: str, known: frozenset[str]) -> bool:
    return selector == "ALL" or any(code.startswith(selector) for code in known)


def context_run(context: ReviewContext) -> _Run:
    """The ruff run for a module: the repository's selection and the CORE rules, or our default."""
    filename = context.path if context.path.endswith((".py", ".pyi")) else "module.py"
    return lint_run(context.lint, filename)


def lint_run(lint: LintSettings | None, filename: str = "module.py") -> _Run:
    """The ruff run for modules with the settings `lint` (None: our default), as `context_run`."""
    if lint is None:
        return _Run(select=(SELECT, *PREVIEW), ignore=tuple(PEDANTIC), config=CONFIG, filename=filename)
    select = (*(lint.select if lint.select is not None else RUFF_DEFAULT), *lint.extend_select, *CORE)
    config = [
        f"lint.pydocstyle.convention = {msgspec.json.encode(lint.docstring_convention or 'google').decode()}"
    ]
    if lint.line_length is not None:
        config.append(f"line-length = {lint.line_length}")
    # Ignores are applied afterwards (`reported`): ruff's own would also drop CORE rules by family.
    # Its Python and its preview choice too: newer-syntax rules judge by the Python it targets.
    return _Run(
        select=tuple(select),
        ignore=(),
        config=tuple(config),
        filename=filename,
        target_version=lint.target_version,
        preview=lint.preview,
    )


def reported(code: str, lint: LintSettings | None) -> bool:
    """Whether a finding of rule `code` from a context run is said, by the repository's settings.

    Without settings our default already chose. With them, as ruff decides: the most specific of
    the repository's selectors wins, an ignore on a tie; a CORE rule the repository does not
    select is said unless it ignores that exact rule.
    """
    if code in NEVER_IN_CONTEXT:
        return False
    if lint is None or code == "invalid-syntax":
        return True
    selected = selector_match(
        code, [*(lint.select if lint.select is not None else RUFF_DEFAULT), *lint.extend_select]
    )
    ignored = selector_match(code, lint.ignore)
    if selected >= 0:
        return selected > ignored
    return selector_match(code, CORE) >= 0 and code not in lint.ignore


def _method_shaped(code: str, source: str) -> bool:
    """Indented as in a class body, or a function whose first parameter is self or cls."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    defs = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not defs or len(defs) != len(tree.body):
        return False
    if code[:1] in (" ", "\t"):
        return True
    arguments = defs[0].args
    first = (arguments.posonlyargs + arguments.args)[:1]
    if not first:
        return False
    # `cls` also names the class argument of module-level helpers (`def has(cls)`): only a
    # classmethod decorator makes it a method's.
    decorators = {ast.unparse(d) for d in defs[0].decorator_list}
    return first[0].arg == "self" or (first[0].arg == "cls" and "classmethod" in decorators)


# Line ends as Python and ruff count lines (str.splitlines also splits at form feeds and U+2028).
LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class FunctionSpan:
    """Where the code sent stands in its module: its first line, the last line sent (a cut
    function ends early), and the columns its first line is indented by."""

    first: int
    last: int
    indent: int


def function_span(code: str, context: ReviewContext) -> FunctionSpan:
    """The span of `code`, lines `context.start_line`.. of `context.module`."""
    rows = LINE_END.split(context.module, maxsplit=context.start_line)
    line = rows[context.start_line - 1] if context.start_line <= len(rows) else ""
    sent = len(LINE_END.split(code.rstrip("\r\n")))
    return FunctionSpan(
        first=context.start_line,
        last=min(context.start_line + sent - 1, context.end_line),
        indent=len(line) - len(line.lstrip(" \t")),
    )


def _shifted(finding: _Finding, rows: int, columns: int) -> _Finding:
    location = _Location(row=finding.location.row - rows, column=max(1, finding.location.column - columns))
    return _Finding(code=finding.code, message=finding.message, location=location)


def _unwrapped(finding: _Finding) -> _Finding:
    return _shifted(finding, 1, len(_WRAPPER_INDENT))


def suggestions_from(findings: list[_Finding], source: str) -> list[Suggestion]:
    """Group ruff's findings by wording and word each group as one suggestion, most important first.

    A rule with its own wording names every place it points at; any other rule is worded by
    ruff's message for its first finding, made plain. Rules that say one concern (CONCERNS) are
    said once: the first of the concern's rules that found something. Each suggestion keeps the
    places (rule, line, column in `source`) it stands for.
    """
    lines = source.splitlines()
    in_test = bool(_TEST_FUNCTION.search(source))
    params: list[str] = []
    returns: list[str] = []
    hint_places: list[Place] = []
    groups: dict[str, _Group] = {}
    syntax: list[str] = []
    syntax_places: list[Place] = []
    for finding in findings:
        code = finding.code or "invalid-syntax"
        place = Place(rule=code, line=finding.location.row, column=finding.location.column)
        if code == "invalid-syntax":
            syntax.append(f"line {finding.location.row}: {finding.message.replace('`', '')}")
            syntax_places.append(place)
            continue
        if code in _TEST_ONLY and in_test:
            continue
        if code.startswith("D1") and _is_overload(lines, finding.location.row):
            continue
        rule = rule_for(code)
        name = _name(rule.name_from, finding, lines)
        if code in {"ANN001", "ANN002", "ANN003"}:
            if name and name not in _IMPLICIT and name not in params:
                params.append(name)
                hint_places.append(place)
            continue
        if code.startswith("ANN2"):
            if name and name not in returns:
                returns.append(name)
                hint_places.append(place)
            continue
        if code.startswith("ANN") or (code.startswith("ARG") and name in _IMPLICIT):
            continue
        if code in {"A001", "A002"} and name in SOFT_BUILTINS:
            continue
        template = rule.template or plain_message(finding.message)
        group = groups.setdefault(rule.template or code, _Group(rule, template, code))
        group.places.append(place)
        if name and name not in group.names:
            group.names.append(name)
    out: list[Suggestion] = []
    if syntax:
        out.append(
            Suggestion(
                text=f"The code does not parse as Python ({syntax[0]}); fix the syntax first.",
                priority=SYNTAX,
                topic="syntax",
                places=tuple(syntax_places),
            )
        )
    hints = _type_hint_text(params, returns)
    if hints:
        out.append(Suggestion(text=hints, priority=TYPES, topic="types", places=tuple(hint_places)))
    for group in _one_per_concern(list(groups.values())):
        names = join_names(group.names)
        if "{names}" in group.template and not names:
            continue
        template = _PLURAL.sub(r"\1s {names}", group.template) if len(group.names) > 1 else group.template
        text = template.replace("{names}", names)
        out.append(
            Suggestion(
                text=text, priority=group.rule.priority, topic=group.rule.topic, places=tuple(group.places)
            )
        )
    out.sort(key=lambda s: s.priority)
    return out


def _one_per_concern(groups: list[_Group]) -> list[_Group]:
    """The groups, less those whose concern an earlier rule of CONCERNS already says."""
    best: dict[str, _Group] = {}
    for group in groups:
        concern = concern_of(group.code)
        if concern is None:
            continue
        order = CONCERNS[concern]
        held = best.get(concern)
        if held is None or order.index(group.code) < order.index(held.code):
            best[concern] = group
    return [g for g in groups if concern_of(g.code) is None or best[concern_of(g.code) or ""] is g]


def _is_overload(lines: list[str], row: int) -> bool:
    """Whether the definition at `row` is an @overload variant (ruff cannot tell without the import)."""
    above = lines[row - 2].strip() if 1 < row <= len(lines) + 1 else ""
    return above in {"@overload", "@typing.overload", "@typing_extensions.overload"}


def _type_hint_text(params: list[str], returns: list[str]) -> str:
    if params and returns:
        noun = "parameter" if len(params) == 1 else "parameters"
        return (
            f"Add type hints to the {noun} {join_names(params)} and a return type to {join_names(returns)}."
        )
    if params:
        noun = "parameter" if len(params) == 1 else "parameters"
        return f"Add type hints to the {noun} {join_names(params)}."
    if returns:
        return f"Add a return type annotation to {join_names(returns)}."
    return ""


def _name(source: str, finding: _Finding, lines: list[str]) -> str:
    row, column = finding.location.row, finding.location.column
    line = lines[row - 1] if 0 < row <= len(lines) else ""
    if source == "location":
        match = _IDENTIFIER.match(line, column - 1)
        return match.group(0) if match else ""
    if source == "default":
        match = _DEFAULT_OF.search(line[: column - 1])
        return match.group(1) if match else ""
    # The first quoted name, not a keyword ("`for` loop variable `line` overwritten...").
    quoted = [q for q in _BACKTICKED.findall(finding.message) if not keyword.iskeyword(q)]
    return quoted[0] if quoted else ""


# ruff's finding and a ruff run, for gateway/batch.py (which runs ruff on whole folders).
RuffFinding = _Finding
RuffRun = _Run
