"""Deterministic checks: ruff, fed the function on standard input, mapped to short plain suggestions.

A linter the Python world maintains finds the mechanical problems (missing hints and docstrings,
mutable defaults, bare excepts, `print` left in...) so they appear whatever the model says.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import re
import textwrap
from dataclasses import dataclass, field

import msgspec

from gateway.suggestions import Suggestion

log = logging.getLogger("gateway.checks")

# Order of importance; the model's suggestions are placed between these tiers (see suggestions.py).
SYNTAX = 0
SECURITY = 10
CORRECTNESS = 15
ERRORS = 20
TYPES = 30
DOCS = 32
STYLE = 40


class ChecksFailedError(Exception):
    """ruff itself failed (timed out, crashed, printed no report): the review has no checks."""


@dataclass(frozen=True)
class Rule:
    priority: int
    topic: str
    # `{names}` is replaced by the names the findings point at ("a, b and c").
    template: str | None = None
    # Where the name comes from: the first `backticked` word of ruff's message, the identifier at
    # the finding, or the parameter a default value belongs to.
    name_from: str = "message"


_ANN_PARAMS = Rule(TYPES, "types")
_ANN_RETURN = Rule(TYPES, "types")
_DOC = Rule(DOCS, "docstring", "Add a docstring to {names}: what it does, takes and returns.", "location")

RULES: dict[str, Rule] = {
    "invalid-syntax": Rule(SYNTAX, "syntax"),
    "ANN001": _ANN_PARAMS,
    "ANN002": _ANN_PARAMS,
    "ANN003": _ANN_PARAMS,
    "ANN201": _ANN_RETURN,
    "ANN202": _ANN_RETURN,
    "ANN204": _ANN_RETURN,
    "ANN205": _ANN_RETURN,
    "ANN206": _ANN_RETURN,
    "D101": Rule(DOCS, "docstring", "Add a docstring to the class {names}.", "location"),
    "D102": _DOC,
    "D103": _DOC,
    "D419": Rule(DOCS, "docstring", "Fill in the empty docstring."),
    "S102": Rule(SECURITY, "exec", "Avoid exec: it runs arbitrary code."),
    "S307": Rule(SECURITY, "eval", "Do not eval data: use ast.literal_eval or explicit parsing."),
    "S301": Rule(
        SECURITY, "pickle", "Do not unpickle untrusted data (it can run code); use JSON or similar."
    ),
    "S506": Rule(SECURITY, "yaml", "Use yaml.safe_load instead of yaml.load."),
    "S602": Rule(SECURITY, "shell", "Avoid shell=True: pass subprocess an argument list (shell injection)."),
    "S605": Rule(SECURITY, "shell", "Avoid os.system: run subprocess with an argument list."),
    "S608": Rule(SECURITY, "sql", "Build SQL with query parameters, not string formatting (SQL injection)."),
    "S324": Rule(SECURITY, "hash", "Use a strong hash such as hashlib.sha256 instead of md5 or sha1."),
    "S113": Rule(SECURITY, "timeout", "Pass a timeout to the requests call so it cannot hang forever."),
    "S105": Rule(SECURITY, "secret", "Do not hard-code passwords or secrets; read them from configuration."),
    "S106": Rule(SECURITY, "secret", "Do not hard-code passwords or secrets; read them from configuration."),
    "S107": Rule(SECURITY, "secret", "Do not hard-code passwords or secrets; read them from configuration."),
    "B006": Rule(
        CORRECTNESS,
        "mutable-default",
        "Do not use a mutable default for {names}: default to None and create it inside the function.",
        "default",
    ),
    "B008": Rule(
        CORRECTNESS,
        "call-default",
        "Do not call functions in the default of {names}: it runs once, at definition time.",
        "default",
    ),
    "B023": Rule(
        CORRECTNESS,
        "closure",
        "The inner function captures the loop variable {names}; bind it as a default argument.",
    ),
    "B904": Rule(CORRECTNESS, "raise-from", "Inside except, raise with 'from err' to keep the cause."),
    "B012": Rule(CORRECTNESS, "finally", "Do not return, break or continue in finally: it hides exceptions."),
    "B018": Rule(CORRECTNESS, "useless", "Remove the useless expression, or use its value."),
    "E711": Rule(CORRECTNESS, "none-compare", "Compare with None using 'is' or 'is not', not == or !=."),
    "E712": Rule(CORRECTNESS, "bool-compare", "Do not compare with True or False using ==; test the value."),
    "E721": Rule(CORRECTNESS, "type-compare", "Use isinstance() instead of comparing types."),
    "F632": Rule(CORRECTNESS, "is-literal", "Use == to compare with literals, not 'is'."),
    "F811": Rule(CORRECTNESS, "redefined", "{names} is defined twice; remove or rename one."),
    "PLW0603": Rule(CORRECTNESS, "global", "Avoid the global statement for {names}; pass values in and out."),
    "PLW2901": Rule(CORRECTNESS, "loop-var", "Do not overwrite the loop variable {names} inside the loop."),
    "SIM115": Rule(CORRECTNESS, "open", "Open files in a with statement so they are always closed."),
    "PLW1510": Rule(CORRECTNESS, "check", "Pass check=True to subprocess.run so failures are not silent."),
    "E722": Rule(ERRORS, "except", "Replace the bare except with the specific exceptions you expect."),
    "BLE001": Rule(ERRORS, "except", "Catch specific exceptions instead of the broad {names}."),
    "S110": Rule(ERRORS, "silenced", "Do not silence exceptions with except: pass; handle or log them."),
    "S112": Rule(ERRORS, "silenced", "Do not silence exceptions with except: continue; handle or log them."),
    "TRY002": Rule(ERRORS, "raise-generic", "Raise a specific exception class, not a bare Exception."),
    "C901": Rule(STYLE, "complexity", "{names} is too complex; split it into smaller functions.", "location"),
    "PLR0911": Rule(STYLE, "complexity", "{names} has too many return statements; simplify it.", "location"),
    "PLR0912": Rule(STYLE, "complexity", "{names} has too many branches; split it up.", "location"),
    "PLR0915": Rule(STYLE, "complexity", "{names} has too many statements; split it up.", "location"),
    "PLR0913": Rule(
        STYLE, "arguments", "{names} takes too many arguments; group related ones in an object.", "location"
    ),
    "ARG001": Rule(STYLE, "unused-argument", "Remove or use the unused argument {names}."),
    "ARG002": Rule(STYLE, "unused-argument", "Remove or use the unused argument {names}."),
    "F841": Rule(STYLE, "unused-variable", "Remove the unused local variable {names}."),
    "F401": Rule(STYLE, "unused-import", "Remove the unused import {names}."),
    "B007": Rule(STYLE, "unused-loop-var", "Rename the unused loop variable {names} to _."),
    "A001": Rule(STYLE, "builtin", "Rename {names} so it does not shadow a Python builtin."),
    "A002": Rule(STYLE, "builtin", "Rename {names} so it does not shadow a Python builtin."),
    "T201": Rule(STYLE, "print", "Remove the print call left in, or use logging."),
    "T203": Rule(STYLE, "print", "Remove the pprint call left in, or use logging."),
    "E731": Rule(STYLE, "lambda", "Use def instead of assigning a lambda to a name."),
    "E741": Rule(STYLE, "naming", "Rename the ambiguous name {names} (l, O and I look like 1 and 0)."),
    "N802": Rule(STYLE, "naming", "Rename the function {names} in snake_case."),
    "N803": Rule(STYLE, "naming", "Rename the argument {names} in snake_case."),
    "N806": Rule(STYLE, "naming", "Rename the variable {names} in snake_case."),
    "SIM102": Rule(STYLE, "simplify", "Merge the nested if statements into one."),
    "SIM108": Rule(STYLE, "simplify", "Use a conditional expression instead of the if-else assignment."),
    "SIM110": Rule(STYLE, "simplify", "Use any() or all() instead of the loop."),
    "SIM118": Rule(STYLE, "simplify", "Test 'key in d' instead of 'key in d.keys()'."),
    "PERF401": Rule(STYLE, "simplify", "Use a list comprehension instead of appending in a loop."),
    "ERA001": Rule(STYLE, "dead-code", "Remove the commented-out code."),
}

# Arguments that are never annotated or "unused" in a method lifted out of its class.
_IMPLICIT = {"self", "cls"}
_BACKTICKED = re.compile(r"`([^`]+)`")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_DEFAULT_OF = re.compile(r"([A-Za-z_]\w*)\s*(?::[^=,()]*)?=\s*$")
_RUFF_CONFIG = ("lint.mccabe.max-complexity = 10",)


class _Location(msgspec.Struct):
    row: int
    column: int


class _Finding(msgspec.Struct):
    code: str | None
    message: str
    location: _Location


_FINDINGS = msgspec.json.Decoder(list[_Finding])


@dataclass
class _Group:
    rule: Rule
    names: list[str] = field(default_factory=list)
    count: int = 0


def join_names(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


class RuffChecker:
    """Runs ruff on one function at a time, as a subprocess, without blocking the event loop."""

    def __init__(self, timeout: float = 15.0, concurrency: int | None = None) -> None:
        self.binary: str = importlib.import_module("ruff").find_ruff_bin()
        self.timeout = timeout
        # A burst of reviews must not fork a ruff per request at once: one per core is plenty.
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)

    async def findings(self, code: str) -> list[_Finding]:
        """ruff's findings for `code`; raises ChecksFailedError (logged) if ruff itself fails."""
        async with self._slots:
            return await self._run(code)

    async def _run(self, code: str) -> list[_Finding]:
        argv = [
            self.binary,
            "check",
            "--isolated",
            "--no-cache",
            "--exit-zero",
            "--target-version",
            "py314",
            "--output-format",
            "json",
            "--select",
            ",".join(code for code in RULES if code != "invalid-syntax"),
            *[arg for setting in _RUFF_CONFIG for arg in ("--config", setting)],
            "--stdin-filename",
            "function.py",
            "-",
        ]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(code.encode()), self.timeout)
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
        """Short suggestions for `code`, one per kind of problem, each tagged with priority and topic.

        Raises ChecksFailedError when ruff itself fails.
        """
        source = textwrap.dedent(code)
        return suggestions_from(await self.findings(source), source)


def suggestions_from(findings: list[_Finding], source: str) -> list[Suggestion]:
    """Group ruff's findings by rule and word each group as one suggestion."""
    lines = source.splitlines()
    params: list[str] = []
    returns: list[str] = []
    groups: dict[str, _Group] = {}
    syntax: list[str] = []
    for finding in findings:
        code = finding.code or "invalid-syntax"
        rule = RULES.get(code)
        if rule is None:
            continue
        if code == "invalid-syntax":
            syntax.append(f"line {finding.location.row}: {finding.message.replace('`', '')}")
            continue
        name = _name(rule.name_from, finding, lines)
        if code in {"ANN001", "ANN002", "ANN003"}:
            if name and name not in _IMPLICIT and name not in params:
                params.append(name)
            continue
        if code.startswith("ANN2"):
            if name and name not in returns:
                returns.append(name)
            continue
        if code.startswith("ARG") and name in _IMPLICIT:
            continue
        template = rule.template or ""
        group = groups.setdefault(template, _Group(rule))
        group.count += 1
        if name and name not in group.names:
            group.names.append(name)
    out: list[Suggestion] = []
    if syntax:
        out.append(
            Suggestion(
                text=f"The code does not parse as Python ({syntax[0]}); fix the syntax first.",
                priority=SYNTAX,
                topic="syntax",
            )
        )
    hints = _type_hint_text(params, returns)
    if hints:
        out.append(Suggestion(text=hints, priority=TYPES, topic="types"))
    for template, group in groups.items():
        names = join_names(group.names)
        if "{names}" in template and not names:
            continue
        out.append(
            Suggestion(
                text=template.replace("{names}", names), priority=group.rule.priority, topic=group.rule.topic
            )
        )
    out.sort(key=lambda s: s.priority)
    return out


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
    match = _BACKTICKED.search(finding.message)
    return match.group(1) if match else ""
