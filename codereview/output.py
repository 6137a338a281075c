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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from codereview.errors import CliError
from jobs_contract import TERMINAL, JobStatus
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
