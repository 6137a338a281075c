"""`codereview scan` against the real stack (fetcher, analyzer with its scan workers, the gateway's
POST /checks), read by its output, its SARIF file and its exit code, as CI would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analyzer.test_sarif import valid
from tests.cli.conftest import Stack, run_cli
from tests.support.fake_github import pull_file

# One stack for the module's tests (tests/cli/conftest.py `stack`): in its loop, on one worker.
pytestmark = [
    pytest.mark.nats,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("cli-scan"),
]

BASE: dict[str, str | bytes] = {
    "README.md": "# demo\n",
    "demo/__init__.py": "",
    "demo/calc.py": ('def add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n'),
    "demo/store.py": ("def remember(value, seen=[]):\n    seen.append(value)\n    return seen\n"),
}
MEAN = "\n".join(
    [
        "def mean(values=[]):",
        "    try:",
        "        return sum(values) / len(values)",
        "    except:",
        "        return 0",
        "",
    ]
)
# The pull request's head: `mean` is new in calc.py (lines 6-10); store.py is untouched.
HEAD: dict[str, str | bytes] = {
    **BASE,
    "demo/calc.py": str(BASE["demo/calc.py"]) + "\n\n" + MEAN,
}
PATCH = "@@ -3,0 +4,7 @@ def add(a: int, b: int) -> int:\n+\n+\n" + "\n".join(
    f"+{line}" for line in MEAN.splitlines()
)


async def test_scan_writes_valid_sarif_and_prints_the_findings_and_a_summary(
    stack: Stack, tmp_path: Path
) -> None:
    stack.github.add_repo("octo", "demo", BASE)
    sarif = tmp_path / "out.sarif"
    result = await run_cli(
        "scan", "https://github.com/octo/demo", "--sarif", str(sarif), "--analyzer-url", stack.analyzer_url
    )
    assert result.code == 0, result.stderr
    # One finding line per finding: path:line:column: severity rule message (function).
    assert any(
        line.startswith("demo/store.py:1:") and "B006" in line and "(demo.store.remember)" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    # One line per concern: the three type-hint findings of `remember` are one sentence, said once.
    hints = [line for line in result.stdout.splitlines() if "Add type hints to the parameters value" in line]
    assert len(hints) == 1, result.stdout
    assert "ANN201, ANN001" in hints[0]
    assert "total" in result.stdout
    assert "functions in" in result.stdout
    log = valid(json.loads(sarif.read_text()))
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]
    }
    assert "demo/store.py" in uris
    assert "SARIF written to" in result.stderr


async def test_scan_fails_the_run_at_the_level_asked(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", BASE)
    strict = await run_cli(
        "scan",
        "https://github.com/octo/demo",
        "--fail-on",
        "note",
        "--json",
        "--analyzer-url",
        stack.analyzer_url,
    )
    lenient = await run_cli(
        "scan", "https://github.com/octo/demo", "--json", "--analyzer-url", stack.analyzer_url
    )
    assert strict.code == 1, strict.stderr
    assert lenient.code == 0, lenient.stderr
    answer = json.loads(lenient.stdout)
    assert answer["scan"]["status"] == "completed"
    assert answer["findings_complete"] is True
    assert {f["rule"] for f in answer["findings"]} >= {"B006"}
    assert answer["scan"]["counts"]["findings"] == len(answer["findings"])


async def test_scan_of_a_pull_request_reports_only_its_changed_functions(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", BASE)
    head_sha = stack.github.add_pull(
        "octo",
        "demo",
        7,
        [pull_file("demo/calc.py", PATCH), pull_file("README.md", "@@ -1 +1 @@\n-# demo\n+# Demo")],
    )
    stack.github.add_repo("octo", "demo", HEAD, ref=head_sha, sha=head_sha)
    result = await run_cli(
        "scan", "https://github.com/octo/demo", "--pr", "7", "--json", "--analyzer-url", stack.analyzer_url
    )
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["scan"]["pull"] == 7
    assert {f["function"] for f in answer["findings"]} == {"demo.calc.mean"}
    assert {f["rule"] for f in answer["findings"]} >= {"B006", "E722"}
    assert {(s["path"], s["reason"]) for s in answer["scan"]["skipped"]} == {("README.md", "not Python")}


async def test_scan_of_a_repository_that_is_not_there_fails_saying_why(stack: Stack) -> None:
    result = await run_cli("scan", "https://github.com/octo/missing", "--analyzer-url", stack.analyzer_url)
    assert result.code == 4, result.stdout
    assert "failed" in result.stderr
    assert "octo/missing" in result.stderr


async def test_scan_says_when_the_sarif_file_cannot_be_written_or_the_wait_runs_out(
    stack: Stack, tmp_path: Path
) -> None:
    stack.github.add_repo("octo", "demo", BASE)
    url, analyzer = "https://github.com/octo/demo", ("--analyzer-url", stack.analyzer_url)
    unwritable = await run_cli("scan", url, "--sarif", str(tmp_path / "no" / "such" / "x.sarif"), *analyzer)
    stack.github.add_repo("octo", "slow", BASE)
    stack.github.trickle("octo", "slow", size=64, delay=0.5)  # the fetch outlasts the wait
    impatient = await run_cli("scan", "https://github.com/octo/slow", "--wait", "0.1", *analyzer)
    assert unwritable.code == 2, unwritable.stderr
    assert "cannot write the SARIF file" in unwritable.stderr
    assert not (tmp_path / "no").exists()
    assert impatient.code == 4, impatient.stderr
    assert "has not ended within 0.1 s" in impatient.stderr
