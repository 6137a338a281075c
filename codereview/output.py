"""What people and scripts read: results on stdout (text or JSON), progress and errors on stderr.

Everything printed passes through here, and much of it comes from outside: repository paths,
function names, a model's suggestions, a job's error, a service's error message. None of it
reaches the terminal as a control sequence or a line of its own: text is written with every
control and bidi character as a visible escape (`\\x1b`, `\\n`, `\\u202e`:
servicekit.text.printable), never read as Rich markup or emoji codes; JSON writes the characters
JSON leaves raw (U+009B, U+202E, ...) as `\\u` escapes, so a script decodes exactly what was sent.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from codereview.errors import CliError
from jobs_contract import TERMINAL, JobStatus
from review_contract import SEVERITIES
from review_contract.scan import ScanFinding, ScanStatus
from servicekit.text import json_printable, printable


def stdout() -> Console:
    # soft_wrap: a long suggestion or name stays one line for grep and copy, whatever the width.
    # emoji off: Rich would turn `:warning:` in a suggestion into a symbol even without markup.
    return Console(file=sys.stdout, soft_wrap=True, highlight=False, emoji=False)


def stderr() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False, emoji=False)


def line(text: str, *, err: bool = False, style: str | None = None) -> None:
    """One line, as it is but for control and bidi characters, written as escapes (`\\x1b`,
    `\\n`): no markup or emoji code is read from it (suggestions and names may hold `[...]`)."""
    (stderr() if err else stdout()).print(printable(text), markup=False, style=style)


def print_json(value: Any) -> None:
    """`value` as one line of JSON, control and bidi characters as `\\u` escapes (JSON allows some raw)."""
    sys.stdout.write(json_printable(json.dumps(value, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def markup_label(text: str) -> str:
    """`text` for a place Rich reads as markup (a progress bar's description), shown as it is."""
    return escape(printable(text))


def error(failure: CliError, *, as_json: bool) -> None:
    """One line on stderr; with --json the same error as an object on stdout, for scripts."""
    stderr().print(printable(f"codereview: {failure.message}"), markup=False, style="red")
    if as_json:
        print_json(failure.as_json())


def suggestions(title: str, items: Sequence[str]) -> None:
    """A heading and the suggestions as a numbered list."""
    count = f"{len(items)} suggestion{'s' if len(items) != 1 else ''}" if items else "no suggestions"
    line(f"{title}: {count}", style="bold")
    width = len(str(len(items)))
    for number, text in enumerate(items, 1):
        line(f"  {number:>{width}}. {text}")


class JobProgress:
    """The progress bar of a job being fetched, on stderr; `update` is fed by events or polling."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=100, status="queued", files=0)

    def update(self, status: JobStatus, fraction: float, files: int) -> None:
        done = 100 if status in TERMINAL else max(0.0, min(fraction, 1.0)) * 100
        self._progress.update(self._task, completed=done, status=str(status), files=files)


@contextmanager
def job_progress(label: str, *, enabled: bool) -> Iterator[JobProgress]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}, {task.fields[files]} files"),
        TimeElapsedColumn(),
    )
    console = stderr()
    # Not a terminal (a pipe, a log file, a test): a live bar would only leave blank lines there.
    with Progress(
        *columns, console=console, transient=True, disable=not (enabled and console.is_terminal)
    ) as progress:
        yield JobProgress(progress, markup_label(label))


@contextmanager
def count_progress(label: str, total: int, *, enabled: bool) -> Iterator[Callable[[], None]]:
    """A bar over `total` steps (functions reviewed), on stderr; call what it yields after each step."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    console = stderr()
    with Progress(
        *columns, console=console, transient=True, disable=not (enabled and console.is_terminal)
    ) as progress:
        task = progress.add_task(markup_label(label), total=total)
        yield lambda: progress.advance(task)


class ScanProgress:
    """The progress bar of a scan (its pieces done of all), on stderr; fed by polling."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=None, status="queued", findings=0)

    def update(self, status: ScanStatus) -> None:
        total = status.progress.pieces_total or None
        self._progress.update(
            self._task,
            total=total,
            completed=status.progress.pieces_done,
            status=status.status,
            findings=status.counts.findings,
        )


@contextmanager
def scan_progress(label: str, *, enabled: bool) -> Iterator[ScanProgress]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} pieces"),
        TextColumn("{task.fields[status]}, {task.fields[findings]} findings"),
        TimeElapsedColumn(),
    )
    console = stderr()
    with Progress(
        *columns, console=console, transient=True, disable=not (enabled and console.is_terminal)
    ) as progress:
        yield ScanProgress(progress, markup_label(label))


# The files the summary names one by one; the rest are counted together.
SUMMARY_FILES = 20


def scan_report(status: ScanStatus, findings: Sequence[ScanFinding], *, complete: bool) -> None:
    """Each concern once, as `path:line:column: severity rules message (function)` at its first
    place (a sentence that stands for several findings of one function, such as type hints missing
    on three parameters, is one line naming their rules; --json and SARIF keep every finding), then
    the summary: the counts by severity, the files with the most severe findings, what was skipped
    or cut short."""
    said: dict[tuple[str, str, str], tuple[ScanFinding, list[str]]] = {}
    for finding in sorted(findings, key=lambda f: (f.path, f.line or 0, f.column or 0, f.rule)):
        _, rules = said.setdefault((finding.path, finding.function, finding.message), (finding, []))
        if finding.rule not in rules:
            rules.append(finding.rule)
    for finding, rules in said.values():
        place = f"{finding.path}:{finding.line or 0}:{finding.column or 0}"
        line(f"{place}: {finding.severity} {', '.join(rules)} {finding.message} ({finding.function})")
    counts = status.counts
    table = Table(title=None, show_edge=False, box=None, pad_edge=False)
    table.add_column("file")
    for severity in SEVERITIES:
        table.add_column(severity, justify="right")
    files = by_file(findings)
    for path, per in files[:SUMMARY_FILES]:
        table.add_row(Text(printable(path)), *(str(per[s]) for s in SEVERITIES))
    if len(files) > SUMMARY_FILES:
        rest = files[SUMMARY_FILES:]
        table.add_row(
            Text(f"({len(rest)} more files)"), *(str(sum(per[s] for _, per in rest)) for s in SEVERITIES)
        )
    table.add_row(Text("total", style="bold"), str(counts.error), str(counts.warning), str(counts.note))
    console = stdout()
    console.print()
    console.print(table)
    line(
        f"{counts.functions} functions in {counts.files} files, {counts.findings} findings "
        f"({counts.error} error, {counts.warning} warning, {counts.note} note)",
        style="bold",
    )
    if counts.skipped:
        shown = ", ".join(f"{s.path} ({s.reason})" for s in status.skipped[:5])
        line(f"{counts.skipped} files skipped: {shown}{', ...' if counts.skipped > 5 else ''}", err=True)
    if status.budget is not None and status.budget.exhausted:
        budget = status.budget
        line(
            f"the model's budget ran out ({budget.functions_asked} functions asked, {budget.tokens_used} "
            "tokens): the other functions were checked without it",
            err=True,
        )
    if not complete:
        line(f"only the first {len(findings)} findings were read; the SARIF file holds them all", err=True)


def by_file(findings: Sequence[ScanFinding]) -> list[tuple[str, Counter[str]]]:
    """Each file's findings counted by severity, the files with the most severe first."""
    counts: dict[str, Counter[str]] = {}
    for finding in findings:
        counts.setdefault(finding.path, Counter())[finding.severity] += 1
    return sorted(counts.items(), key=lambda item: (*(-item[1][s] for s in SEVERITIES), item[0]))
