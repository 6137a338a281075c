"""`codereview scan`: a whole repository, or a pull request's changed functions, in one job.

The scan runs in the services (`POST /analyze/scan`); the command starts it, follows it (a bar on
a terminal, a line per change elsewhere), then prints the findings and a summary by severity and
file, writes the SARIF log where asked, and ends with exit code 1 when a finding reaches
`--fail-on` (for CI).
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from codereview import output
from codereview.api import Analyzer
from codereview.errors import CliError, ExitCode
from review_contract import SEVERITIES
from review_contract.scan import ScanFinding, ScanMode, ScanRequest, ScanStatus


class FailOn(enum.StrEnum):
    """`--fail-on`: the least severe finding that makes the run exit with 1."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"
    NEVER = "never"


# A scan's status is read this often while it runs.
SCAN_POLL_S = 1.0
FINDINGS_PAGE = 500
# The findings the command reads back at most (the SARIF file holds them all).
MAX_FINDINGS = 100_000


@dataclass(frozen=True)
class ScanOptions:
    repo_url: str
    pull: int | None
    paths: list[str] | None
    mode: ScanMode
    max_functions: int | None
    max_tokens: int | None
    sarif: Path | None
    fail_on: FailOn
    wait_s: float


def reaches(severity: str, fail_on: FailOn) -> bool:
    """Whether a finding of `severity` fails the run under `--fail-on` (error > warning > note)."""
    if fail_on is FailOn.NEVER:
        return False
    return SEVERITIES.index(severity) <= SEVERITIES.index(fail_on.value)


async def run_scan(analyzer: Analyzer, options: ScanOptions, *, as_json: bool) -> ExitCode:
    job_id = await analyzer.start(options.repo_url)
    request = ScanRequest(
        job_id=job_id,
        paths=options.paths,
        pull=options.pull,
        mode=options.mode,
        max_functions=options.max_functions,
        max_tokens=options.max_tokens,
    )
    scan_id = await analyzer.scan(request)
    what = f"pull request {options.pull} of {options.repo_url}" if options.pull else options.repo_url
    with output.scan_progress(f"scanning {what}", enabled=not as_json) as bar:
        status = await follow(analyzer, scan_id, on_update=bar.update, quiet=as_json, wait_s=options.wait_s)
    if status.status == "failed":
        raise CliError(
            f"scan {scan_id} failed: {status.error or 'no reason given'}",
            ExitCode.SERVICE,
            service="analyzer",
            job_id=job_id,
            scan_id=scan_id,
        )
    findings, complete = await read_findings(analyzer, scan_id)
    if options.sarif is not None:
        write_json(options.sarif, await analyzer.scan_sarif(scan_id))
    if as_json:
        output.print_json(
            {
                "job_id": job_id,
                "scan": msgspec.to_builtins(status),
                "findings": msgspec.to_builtins(findings),
                "findings_complete": complete,
            }
        )
    else:
        output.scan_report(status, findings, complete=complete)
        if options.sarif is not None:
            output.line(f"SARIF written to {options.sarif}", err=True)
    failing = any(reaches(finding.severity, options.fail_on) for finding in findings)
    return ExitCode.SUGGESTIONS if failing else ExitCode.OK


async def follow(
    analyzer: Analyzer,
    scan_id: str,
    *,
    on_update: Callable[[ScanStatus], None],
    quiet: bool,
    wait_s: float,
) -> ScanStatus:
    """Read the scan's status until it ends; a plain line at each change of state when the output
    is not a terminal. Raises CliError (SERVICE) when it has not ended within `wait_s`."""
    deadline = time.monotonic() + wait_s
    said = ""
    while True:
        status = await analyzer.scan_status(scan_id)
        on_update(status)
        state = f"{status.status}, {status.progress.pieces_done}/{status.progress.pieces_total} pieces"
        if not quiet and state != said and not output.stderr().is_terminal:
            output.line(f"scan {scan_id}: {state}", err=True)
        said = state
        if status.status in ("completed", "failed"):
            return status
        if time.monotonic() >= deadline:
            raise CliError(
                f"scan {scan_id} has not ended within {wait_s:g} s ({state}); follow it with "
                f"GET /analyze/scans/{scan_id}, or give a longer --wait",
                ExitCode.SERVICE,
                service="analyzer",
                scan_id=scan_id,
            )
        await asyncio.sleep(SCAN_POLL_S)


async def read_findings(analyzer: Analyzer, scan_id: str) -> tuple[list[ScanFinding], bool]:
    """Every finding of the scan, page by page, up to MAX_FINDINGS; and whether that was all."""
    findings: list[ScanFinding] = []
    cursor: str | None = None
    while True:
        page = await analyzer.scan_findings(scan_id, limit=FINDINGS_PAGE, cursor=cursor)
        findings.extend(page.findings)
        cursor = page.next_cursor
        if not cursor:
            return findings, True
        if len(findings) >= MAX_FINDINGS:
            return findings[:MAX_FINDINGS], False


def write_json(path: Path, value: object) -> None:
    """Write `value` as JSON to `path` whole or not at all (a temporary file renamed over it).

    Raises CliError (USAGE) when the file cannot be written."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            json.dump(value, handle, ensure_ascii=False, indent=1)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(f"cannot write the SARIF file {path}: {exc.strerror or exc}", ExitCode.USAGE) from None
