"""A scan's findings as SARIF 2.1.0, the way GitHub code scanning accepts and tracks them.

One run; the tool `codereview` with a rule for every rule a finding names (ruff's codes, the type
checker's `ty/...`, and `model` for the model's suggestions, a rule of their own); one result per
finding with its level (the finding's severity: error, warning and note are SARIF's levels), its
place (a URI relative to the repository root under `%SRCROOT%`, line and column), the function it
is in (a logical location), and the finding's fingerprint as a partial fingerprint, so code
scanning keeps one alert per finding across runs, however the code above it moves.

A path that cannot be a safe relative URI (absolute, `..`, a backslash, ...) is not guessed at: its
findings are left out, and the run's invocation says which and why (a tool execution notification).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from review_contract.checks import RuleInfo
from review_contract.scan import ScanFinding
from review_contract.shapes import SEVERITIES, Severity

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "codereview"
# The rule of the model's own suggestions (review_contract.shapes.Finding: `model`).
MODEL_RULE = "model"
MODEL_RULE_INFO = RuleInfo(
    name="model-suggestion",
    summary="A suggestion of the language model that reviewed the function: a reviewer's comment, "
    "not the verdict of a check.",
)
# The partial fingerprint's name: versioned, as SARIF advises, so a new scheme can sit beside it.
FINGERPRINT_KEY = "codereview/v1"
SRCROOT = "%SRCROOT%"
# The longest path made into a URI (review_contract's paths are at most this long).
MAX_PATH_CHARS = 4_096
# How much of a refused path a notification quotes.
_QUOTED_PATH_CHARS = 200
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """A path that is no safe URI relative to the repository root; `str()` says why."""


def artifact_uri(path: str) -> str:
    """`path` (relative to the repository root, `/`-separated) as a relative URI reference:
    every character but letters, digits, `-._~` and the `/` between segments percent-encoded
    (UTF-8; spaces, `%`, `#`, `?`, `:` and non-ASCII included), so it resolves under %SRCROOT% to
    that file and nowhere else.

    Raises UnsafePathError for an empty or overlong path, an absolute one (`/x`, `C:/x`), one with
    an empty, `.` or `..` segment, or a backslash (Windows tools read it as a separator, so
    `a\\..\\..\\x` could leave the root), and for text that is not a file name (lone surrogates).
    """
    if not path:
        raise UnsafePathError("the path is empty")
    if len(path) > MAX_PATH_CHARS:
        raise UnsafePathError(f"the path is longer than {MAX_PATH_CHARS} characters")
    if path.startswith("/") or _WINDOWS_ABSOLUTE.match(path):
        raise UnsafePathError("the path is absolute, not relative to the repository root")
    if "\\" in path:
        raise UnsafePathError("the path has a backslash, which Windows tools read as a folder separator")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            shown = "an empty" if not segment else f"a {segment!r}"
            raise UnsafePathError(f"the path has {shown} segment (not a plain path from the repository root)")
    try:
        # surrogateescape: a name that was not UTF-8 (decoded with surrogateescape) gets its own bytes back.
        return quote(path, safe="/", encoding="utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        raise UnsafePathError("the path is not text a file name can hold (lone surrogates)") from None


def sarif_log(
    findings: Iterable[ScanFinding],
    rules: Mapping[str, RuleInfo],
    *,
    tool_version: str,
    information_uri: str | None = None,
    function_lines: Mapping[tuple[str, str], int] | None = None,
) -> dict[str, Any]:
    """The SARIF 2.1.0 log of `findings` (a JSON-ready dict; see the module docstring).

    `rules` describes rule ids (RuleInfo: name, one sentence, documentation URL); a rule a finding
    names that it does not describe gets a plain description (the model's rule its own). Results
    are in a stable order (path, line, column, rule, message), so the same findings give the same
    log. A finding without a line is placed at its function's first line when `function_lines`
    knows it ((path, function) -> line), else at its file alone (no region). A fingerprint that
    two results share gets `:2`, `:3`... in that order, so code scanning keeps them apart.
    Findings whose path is unsafe (`artifact_uri`) are left out, each with a notification saying
    why. Never raises for what the findings hold.
    """
    ordered = sorted(findings, key=_order)
    descriptors, index = _rules(ordered, rules)
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()
    for finding in ordered:
        try:
            uri = artifact_uri(finding.path)
        except UnsafePathError as error:
            notifications.append(_refused(finding, str(error)))
            continue
        seen[finding.fingerprint] += 1
        occurrence = seen[finding.fingerprint]
        fingerprint = finding.fingerprint if occurrence == 1 else f"{finding.fingerprint}:{occurrence}"
        line = finding.line
        if line is None and function_lines is not None:
            line = function_lines.get((finding.path, finding.function))
        results.append(_result(finding, uri, line, index[finding.rule], fingerprint, descriptors))
    driver: dict[str, Any] = {"name": TOOL_NAME, "version": tool_version, "rules": descriptors}
    if information_uri is not None and _absolute_uri(information_uri):
        driver["informationUri"] = information_uri
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "invocations": [invocation],
                # ruff and the type checker count columns in characters, not UTF-16 code units.
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def _order(finding: ScanFinding) -> tuple[str, int, int, str, str, str]:
    return (
        finding.path,
        finding.line or 0,
        finding.column or 0,
        finding.rule,
        finding.message,
        finding.fingerprint,
    )


def _rules(
    findings: list[ScanFinding], rules: Mapping[str, RuleInfo]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rule descriptors, sorted by id (every rule described or named), and each id's index."""
    levels: dict[str, Severity] = {}
    for finding in findings:
        known = levels.get(finding.rule)
        if known is None or SEVERITIES.index(finding.severity) < SEVERITIES.index(known):
            levels[finding.rule] = finding.severity
    ids = sorted(set(rules) | set(levels))
    descriptors = [_descriptor(rule, _info(rule, rules), levels.get(rule, "warning")) for rule in ids]
    return descriptors, {rule: position for position, rule in enumerate(ids)}


def _info(rule: str, rules: Mapping[str, RuleInfo]) -> RuleInfo:
    if rule in rules:
        return rules[rule]
    if rule == MODEL_RULE:
        return MODEL_RULE_INFO
    if rule.startswith("ty/"):
        return RuleInfo(name=rule[3:], summary=f"The type checker's rule {rule[3:]}.")
    return RuleInfo(name=rule, summary=f"The rule {rule}.")


def _descriptor(rule: str, info: RuleInfo, level: Severity) -> dict[str, Any]:
    """A reportingDescriptor: the level is the most severe a finding of the rule has here (the
    results carry their own)."""
    name = info.name or rule
    summary = info.summary or name
    descriptor: dict[str, Any] = {
        "id": rule,
        "name": name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": summary},
        "defaultConfiguration": {"level": level},
        "properties": {"tags": [_source(rule)]},
    }
    if info.url is not None and _absolute_uri(info.url):
        descriptor["helpUri"] = info.url
        descriptor["help"] = {
            "text": f"{summary} {info.url}",
            "markdown": f"{summary} [Documentation]({info.url})",
        }
    else:
        descriptor["help"] = {"text": summary}
    return descriptor


def _source(rule: str) -> str:
    if rule == MODEL_RULE:
        return "model"
    return "type-check" if rule.startswith("ty/") else "ruff"


def _result(
    finding: ScanFinding,
    uri: str,
    line: int | None,
    rule_index: int,
    fingerprint: str,
    descriptors: list[dict[str, Any]],
) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "uriBaseId": SRCROOT}}
    if line is not None and line >= 1:
        region: dict[str, int] = {"startLine": line}
        # A column only with the finding's own line: a function's first line has no column of it.
        if finding.line is not None and finding.column is not None and finding.column >= 1:
            region["startColumn"] = finding.column
        physical["region"] = region
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.function:
        location["logicalLocations"] = [
            {
                "name": finding.function.rsplit(".", 1)[-1],
                "fullyQualifiedName": finding.function,
                "kind": "function",
            }
        ]
    # SARIF wants a message; a finding without one says its rule's sentence.
    text = finding.message or descriptors[rule_index]["shortDescription"]["text"]
    return {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": finding.severity,
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
    }


def _refused(finding: ScanFinding, why: str) -> dict[str, Any]:
    path = finding.path[:_QUOTED_PATH_CHARS] + ("…" if len(finding.path) > _QUOTED_PATH_CHARS else "")
    return {
        "level": "warning",
        "message": {
            "text": f"a finding of rule {finding.rule} in {finding.function or 'a function'} is left "
            f'out: its path "{path}" is refused: {why}'
        },
    }


def _absolute_uri(value: str) -> bool:
    """An http(s) URL with a host: what GitHub links to (informationUri, helpUri)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in value)
