"""analyzer.scan.sarif: SARIF 2.1.0 that validates against the official schema, places every finding,
keeps fingerprints across runs and edits above, and never lets a hostile path out of the root."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from analyzer.scan.sarif import (
    FINGERPRINT_KEY,
    MODEL_RULE,
    SARIF_SCHEMA,
    UnsafePathError,
    artifact_uri,
    sarif_log,
)
from gateway.checks import RuffChecker
from gateway.findings import findings_of
from review_contract import ReviewContext, fingerprint
from review_contract.checks import RuleInfo
from review_contract.scan import ScanFinding

SCHEMA = json.loads((Path(__file__).parent / "sarif" / "sarif-schema-2.1.0.json").read_text())

# RFC 3986, strictly: the characters a URI may hold, and a relative path whose first segment has
# no ":" (path-noscheme), which is what a file's URI relative to %SRCROOT% must be.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_PCHAR_NC = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=@]|%[0-9A-Fa-f]{2})"
RELATIVE_PATH = re.compile(rf"{_PCHAR_NC}+(?:/{_PCHAR}*)*")
_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:(?:{_PCHAR}|[/?#\[\]])*")
_REFERENCE = re.compile(rf"(?:{_PCHAR_NC}+(?:/{_PCHAR}*)*)?(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?")

FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("uri")(lambda value: not isinstance(value, str) or bool(_URI.fullmatch(value)))
FORMATS.checks("uri-reference")(
    lambda value: not isinstance(value, str) or bool(_URI.fullmatch(value) or _REFERENCE.fullmatch(value))
)
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=FORMATS)


def valid(log: dict[str, Any]) -> dict[str, Any]:
    """`log` after checking it against the SARIF 2.1.0 schema (and as JSON: it must survive a dump)."""
    errors = sorted(VALIDATOR.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    assert json.loads(json.dumps(log, ensure_ascii=False)) == log
    return log


MODULE = """import os


def load(path, cache={}):
    if path == None:
        return None
    try:
        return open(path).read()
    except:
        return cache
"""
RULES = {
    "B006": RuleInfo(
        name="mutable-argument-default",
        summary="Do not use mutable data structures for argument defaults.",
        url="https://docs.astral.sh/ruff/rules/mutable-argument-default/",
    ),
    "E711": RuleInfo(name="none-comparison", summary="Comparison to None should be `cond is None`."),
}


async def ruff_findings(
    module: str, start_line: int, end_line: int, path: str = "pkg/io.py"
) -> list[ScanFinding]:
    """The findings of the function on these lines as the gateway makes them: ruff over the whole
    module, the lines kept, the fingerprints of review_contract."""
    context = ReviewContext(path=path, module=module, start_line=start_line, end_line=end_line)
    code = "\n".join(module.split("\n")[start_line - 1 : end_line])
    checks = await RuffChecker().check_in_context(code, context)
    return [
        ScanFinding.of(f, path=path, function="pkg.io.load") for f in findings_of(checks, [], code, context)
    ]


def model_finding(
    text: str = "Close the file: use `with open(...)`.", path: str = "pkg/io.py"
) -> ScanFinding:
    return ScanFinding(
        rule=MODEL_RULE,
        message=text,
        severity="warning",
        fingerprint=fingerprint(MODEL_RULE, path, "load", text),
        path=path,
        function="pkg.io.load",
    )


def finding(path: str = "pkg/a.py", **changes: Any) -> ScanFinding:
    values: dict[str, Any] = {
        "rule": "E711",
        "message": "Compare with None using 'is'.",
        "severity": "error",
        "fingerprint": fingerprint("E711", path, "f", "x == None"),
        "path": path,
        "function": "pkg.a.f",
        "line": 3,
        "column": 8,
    }
    values.update(changes)
    return ScanFinding(**values)


async def test_the_log_of_real_findings_is_valid_sarif_2_1_0_with_one_run_of_codereview() -> None:
    findings = [*await ruff_findings(MODULE, 4, 10), model_finding()]
    findings.append(
        ScanFinding(
            rule="ty/missing-argument",
            message="Pass the argument `mode` that open_file requires.",
            severity="error",
            fingerprint=fingerprint("ty/missing-argument", "pkg/io.py", "load", "x"),
            path="pkg/io.py",
            function="pkg.io.load",
            line=8,
            column=16,
        )
    )

    log = valid(
        sarif_log(findings, RULES, tool_version="0.1.0", information_uri="https://example.org/codereview")
    )

    assert log["$schema"] == SARIF_SCHEMA
    assert log["version"] == "2.1.0"
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"], driver["informationUri"]) == (
        "codereview",
        "0.1.0",
        "https://example.org/codereview",
    )
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == sorted(ids)
    assert {"B006", "E711", "E722", "PLW1514", "ANN001", "model", "ty/missing-argument"} <= set(ids)
    assert len(run["results"]) == len(findings)
    for result in run["results"]:
        rule = driver["rules"][result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        [location] = result["locations"]
        assert location["physicalLocation"]["artifactLocation"] == {
            "uri": "pkg/io.py",
            "uriBaseId": "%SRCROOT%",
        }
        assert location["logicalLocations"] == [
            {"name": "load", "fullyQualifiedName": "pkg.io.load", "kind": "function"}
        ]
        assert set(result["partialFingerprints"]) == {FINGERPRINT_KEY}
    assert run["invocations"] == [{"executionSuccessful": True}]
    assert run["columnKind"] == "unicodeCodePoints"


async def test_a_result_says_its_rule_level_line_column_and_message_and_the_rule_describes_itself() -> None:
    findings = await ruff_findings(MODULE, 4, 10)
    b006 = next(f for f in findings if f.rule == "B006")

    log = valid(sarif_log([b006], RULES, tool_version="1.2.3"))

    [run] = log["runs"]
    [result] = run["results"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == ["B006", "E711"]  # the ones described, and the used
    assert result == {
        "ruleId": "B006",
        "ruleIndex": 0,
        "level": "error",
        "message": {"text": b006.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "pkg/io.py", "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": 4, "startColumn": 22},
                },
                "logicalLocations": [
                    {"name": "load", "fullyQualifiedName": "pkg.io.load", "kind": "function"}
                ],
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: b006.fingerprint},
    }
    url = "https://docs.astral.sh/ruff/rules/mutable-argument-default/"
    summary = "Do not use mutable data structures for argument defaults."
    assert rules[0] == {
        "id": "B006",
        "name": "mutable-argument-default",
        "shortDescription": {"text": summary},
        "fullDescription": {"text": summary},
        "help": {"text": f"{summary} {url}", "markdown": f"{summary} [Documentation]({url})"},
        "helpUri": url,
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["ruff"]},
    }
    # A rule no finding names keeps the default level; one without a URL has no helpUri.
    assert rules[1]["defaultConfiguration"] == {"level": "warning"}
    assert "helpUri" not in rules[1]


async def test_fingerprints_are_the_same_across_runs_and_with_lines_inserted_above() -> None:
    first = sarif_log(await ruff_findings(MODULE, 4, 10), RULES, tool_version="0.1.0")
    again = sarif_log(await ruff_findings(MODULE, 4, 10), RULES, tool_version="0.1.0")
    assert again == first

    moved = MODULE.replace("import os\n", "import os\nimport sys\n\n# A comment above the function.\n", 1)
    shifted = valid(sarif_log(await ruff_findings(moved, 7, 13), RULES, tool_version="0.1.0"))

    def by_fingerprint(log: dict[str, Any]) -> dict[str, tuple[str, int]]:
        return {
            r["partialFingerprints"][FINGERPRINT_KEY]: (
                r["ruleId"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
            )
            for r in log["runs"][0]["results"]
        }

    before, after = by_fingerprint(first), by_fingerprint(shifted)
    assert len(before) == len(first["runs"][0]["results"]) >= 5  # every fingerprint differs
    assert set(after) == set(before)
    assert {key: (rule, line + 3) for key, (rule, line) in before.items()} == after


async def test_the_models_suggestions_are_results_of_their_own_rule_placed_at_their_function() -> None:
    suggestion = model_finding()

    placed = valid(
        sarif_log([suggestion], {}, tool_version="0.1.0", function_lines={("pkg/io.py", "pkg.io.load"): 4})
    )
    unplaced = valid(sarif_log([suggestion], {}, tool_version="0.1.0"))

    [rule] = placed["runs"][0]["tool"]["driver"]["rules"]
    assert rule["id"] == MODEL_RULE
    assert rule["name"] == "model-suggestion"
    assert rule["properties"] == {"tags": ["model"]}
    [result] = placed["runs"][0]["results"]
    assert (result["ruleId"], result["ruleIndex"], result["level"]) == (MODEL_RULE, 0, "warning")
    # The function's first line, and no column: the suggestion is about the function, not a place in it.
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 4}
    [result] = unplaced["runs"][0]["results"]
    assert "region" not in result["locations"][0]["physicalLocation"]
    assert result["partialFingerprints"] == {FINGERPRINT_KEY: suggestion.fingerprint}


def test_a_fingerprint_two_results_share_is_told_apart_in_a_stable_order() -> None:
    twice = [finding(line=9, message="second"), finding(line=3, message="first")]

    results = valid(sarif_log(twice, {}, tool_version="0"))["runs"][0]["results"]

    key = twice[0].fingerprint
    assert [(r["message"]["text"], r["partialFingerprints"][FINGERPRINT_KEY]) for r in results] == [
        ("first", key),
        ("second", f"{key}:2"),
    ]


def test_an_empty_scan_is_a_valid_log_listing_the_rules_it_was_given() -> None:
    log = valid(sarif_log([], RULES, tool_version="0.1.0"))

    assert log["runs"][0]["results"] == []
    assert [rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]] == ["B006", "E711"]


def test_odd_rule_texts_and_urls_are_kept_out_of_links() -> None:
    rules = {
        "X1": RuleInfo(name="", summary="", url="javascript:alert(1)"),
        "X2": RuleInfo(name="x", summary="s", url="not a url"),
    }
    log = valid(
        sarif_log(
            [finding(rule="X1", message=""), finding(rule="ty/call-non-callable", line=None, column=None)],
            rules,
            tool_version="0",
            information_uri="file:///etc/passwd",
        )
    )

    driver = log["runs"][0]["tool"]["driver"]
    assert "informationUri" not in driver
    x1, x2, ty = sorted(driver["rules"], key=lambda r: r["id"])
    assert "helpUri" not in x1
    assert "helpUri" not in x2
    assert x1["shortDescription"] == {"text": "X1"}
    assert ty["name"] == "call-non-callable"
    assert ty["properties"] == {"tags": ["type-check"]}
    texts = {r["ruleId"]: r["message"]["text"] for r in log["runs"][0]["results"]}
    assert texts["X1"] == "X1"  # no message: the rule's sentence


# -- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("pkg/core.py", "pkg/core.py"),
        ("pkg/my file.py", "pkg/my%20file.py"),
        ("pkg/ünï/çode.py", "pkg/%C3%BCn%C3%AF/%C3%A7ode.py"),
        ("ab:c.py", "ab%3Ac.py"),
        ("100%.py", "100%25.py"),
        ("q?#[].py", "q%3F%23%5B%5D.py"),
        ("new\nline\u202e.py", "new%0Aline%E2%80%AE.py"),
        ("\udcff.py", "%FF.py"),
        ("~user/-x_.py", "~user/-x_.py"),
    ],
)
def test_a_path_becomes_a_percent_encoded_uri_relative_to_the_root(path: str, uri: str) -> None:
    assert artifact_uri(path) == uri
    assert RELATIVE_PATH.fullmatch(uri)
    assert urllib.parse.unquote(uri, errors="surrogateescape") == path
    root = "file:///checkout/repo/"
    assert urllib.parse.urljoin(root, uri).startswith(root)
    log = valid(sarif_log([finding(path)], {}, tool_version="0"))
    [result] = log["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "the path is empty"),
        ("/etc/passwd", "the path is absolute"),
        ("C:/Windows/x.py", "the path is absolute"),
        ("c:x.py", "the path is absolute"),
        ("../etc/passwd", "the path has a '..' segment"),
        ("pkg/../../x.py", "the path has a '..' segment"),
        ("./x.py", "the path has a '.' segment"),
        ("pkg//x.py", "the path has an empty segment"),
        ("pkg/", "the path has an empty segment"),
        ("pkg\\..\\..\\x.py", "the path has a backslash"),
        ("\\\\server\\share\\x.py", "the path has a backslash"),
        ("x" * 4_097, "the path is longer than 4096 characters"),
        ("\ud800.py", "the path is not text a file name can hold"),
    ],
)
def test_a_hostile_path_is_refused_and_its_finding_left_out_saying_why(path: str, why: str) -> None:
    with pytest.raises(UnsafePathError) as refused:
        artifact_uri(path)
    assert str(refused.value).startswith(why)

    log = valid(sarif_log([finding(path), finding("pkg/ok.py")], {}, tool_version="0"))

    [run] = log["runs"]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]] == [
        "pkg/ok.py"
    ]
    [notification] = run["invocations"][0]["toolExecutionNotifications"]
    assert notification["level"] == "warning"
    text = notification["message"]["text"]
    assert text.startswith("a finding of rule E711 in pkg.a.f is left out: its path ")
    assert text.endswith(f"is refused: {refused.value}")


def test_the_schema_check_catches_a_broken_log() -> None:
    log = sarif_log([finding()], {}, tool_version="0")
    result = log["runs"][0]["results"][0]
    result["level"] = "fatal"
    result["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "a b.py"
    messages = {error.message for error in VALIDATOR.iter_errors(log)}
    assert "'fatal' is not one of ['none', 'note', 'warning', 'error']" in messages
    assert "0 is less than the minimum of 1" in messages
    assert "'a b.py' is not a 'uri-reference'" in messages
