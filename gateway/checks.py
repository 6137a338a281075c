"""Deterministic checks: ruff, fed the function on standard input, mapped to short plain suggestions.

A linter the Python world maintains finds the mechanical problems (missing hints and docstrings,
mutable defaults, bare excepts, `print` left in...) so they appear whatever the model says.
"""

from __future__ import annotations

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

from gateway.rules import CONFIG, IGNORED, PREVIEW, SELECT, SYNTAX, TYPES, Rule, plain_message, rule_for
from gateway.suggestions import Suggestion

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


_FINDINGS = msgspec.json.Decoder(list[_Finding])


@dataclass
class _Group:
    rule: Rule
    template: str
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
            "--preview",
            "--select",
            ",".join((SELECT, *PREVIEW)),
            "--ignore",
            ",".join(IGNORED),
            *[arg for setting in CONFIG for arg in ("--config", setting)],
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
    """Group ruff's findings by wording and word each group as one suggestion, most important first.

    A rule with its own wording names every place it points at; any other rule is worded by
    ruff's message for its first finding, made plain.
    """
    lines = source.splitlines()
    in_test = bool(_TEST_FUNCTION.search(source))
    params: list[str] = []
    returns: list[str] = []
    groups: dict[str, _Group] = {}
    syntax: list[str] = []
    for finding in findings:
        code = finding.code or "invalid-syntax"
        if code == "invalid-syntax":
            syntax.append(f"line {finding.location.row}: {finding.message.replace('`', '')}")
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
            continue
        if code.startswith("ANN2"):
            if name and name not in returns:
                returns.append(name)
            continue
        if code.startswith("ANN") or (code.startswith("ARG") and name in _IMPLICIT):
            continue
        template = rule.template or plain_message(finding.message)
        group = groups.setdefault(rule.template or code, _Group(rule, template))
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
    for group in groups.values():
        names = join_names(group.names)
        if "{names}" in group.template and not names:
            continue
        template = _PLURAL.sub(r"\1s {names}", group.template) if len(group.names) > 1 else group.template
        text = template.replace("{names}", names)
        out.append(Suggestion(text=text, priority=group.rule.priority, topic=group.rule.topic))
    out.sort(key=lambda s: s.priority)
    return out


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
