"""A review's findings as data: rule, place in the repository file, severity and a stable fingerprint.

The suggestions are for people (one sentence per concern); the findings are for tools (SARIF,
editors, CI): one per place a check pointed at, each with the sentence of its suggestion.
"""

from __future__ import annotations

import re
from collections import Counter

from gateway.checks import LINE_END, function_span
from gateway.rules import severity_of
from gateway.suggestions import Suggestion
from review_contract import Finding, ReviewContext, fingerprint

_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.MULTILINE)
MODEL_RULE = "model"


def findings_of(
    checks: list[Suggestion], model: list[Suggestion], code: str, context: ReviewContext | None
) -> list[Finding]:
    """Every place of the checks' suggestions, then each of the model's suggestions kept.

    Lines are in the repository file when the review had its `context` (the function starts at
    its `start_line`), else in `code`. The fingerprint leaves the line number out, so a finding
    keeps it when code above it moves.
    """
    lines = LINE_END.split(code)
    span = function_span(code, context) if context is not None else None
    offset = span.first - 1 if span is not None else 0
    indent = span.indent if span is not None else 0
    path = context.path if context is not None else None
    match = _DEF.search(code)
    function = match.group(1) if match else ""
    seen: Counter[tuple[str, str]] = Counter()
    out: list[Finding] = []
    for suggestion in checks:
        severity = severity_of(suggestion.priority)
        for place in suggestion.places:
            text = lines[place.line - 1] if 0 < place.line <= len(lines) else ""
            occurrence = seen[(place.rule, text.strip())]
            seen[(place.rule, text.strip())] += 1
            out.append(
                Finding(
                    rule=place.rule,
                    message=suggestion.text,
                    severity=severity,
                    fingerprint=fingerprint(place.rule, path, function, text, occurrence),
                    path=path,
                    line=place.line + offset,
                    column=place.column + indent,
                )
            )
    for suggestion in model:
        out.append(
            Finding(
                rule=MODEL_RULE,
                message=suggestion.text,
                severity=severity_of(suggestion.priority),
                fingerprint=fingerprint(MODEL_RULE, path, function, suggestion.text),
                path=path,
            )
        )
    return out
