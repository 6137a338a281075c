"""The review of one function: the job's snapshot -> the function's source -> the gateway's suggestions."""

from __future__ import annotations

import logging
import time

from analyzer import locate
from analyzer.errors import FunctionNotFound, InvalidFunctionName, SnapshotUnavailable, SourceDoesNotParse
from analyzer.jobs import JobStore, check_job_id
from analyzer.locate import MAX_NAME_CHARS
from analyzer.logs import job_id_var
from analyzer.review import Reviewer
from analyzer.snapshots import LoadedSnapshot, SnapshotCache

logger = logging.getLogger("analyzer.analysis")


def check_function_name(function_name: str) -> str:
    """The name without surrounding whitespace; InvalidFunctionName (422) if it is empty or absurd.

    The finer rules (dotted identifiers) are the index's; this only refuses what no index could take.
    """
    name = function_name.strip()
    if not name:
        raise InvalidFunctionName(
            "function_name is empty: give a dotted name such as 'package.module.function' "
            "or 'module.Class.method'"
        )
    if len(name) > MAX_NAME_CHARS:
        raise InvalidFunctionName(f"function_name is longer than {MAX_NAME_CHARS} characters")
    if not name.isprintable():
        raise InvalidFunctionName("function_name contains control characters")
    return name


def find_function(loaded: LoadedSnapshot, name: str) -> locate.FoundFunction:
    """The function `name` in the snapshot, or the analyzer error that says why not."""
    where = loaded.key
    try:
        return loaded.index.find(name)
    except locate.MalformedName as exc:
        raise InvalidFunctionName(f"function_name {name!r} is malformed: {exc}", function_name=name) from exc
    except locate.NameNotFound as exc:
        close = list(exc.suggestions)[:5]
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise FunctionNotFound(
            f"no function {name!r} in {where}{hint}", function_name=name, did_you_mean=close
        ) from exc
    except locate.UnparsableSource as exc:
        raise SourceDoesNotParse(str(exc), function_name=name, path=exc.path) from exc


def truncate_source(source: str, max_chars: int) -> tuple[str, bool]:
    """The beginning of `source` that fits in `max_chars`, cut after a whole line; True if cut.

    When even the first line is longer than `max_chars`, that line is cut at `max_chars`.
    Raises ValueError if `max_chars` is not positive.
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if len(source) <= max_chars:
        return source, False
    head = source[:max_chars]
    cut = max(head.rfind("\n"), head.rfind("\r"))
    if cut <= 0:
        return head, True
    return head[:cut].rstrip("\r\n"), True


def cut_notice(qualified_name: str, sent: str, source: str, max_chars: int) -> str:
    """The suggestion that says a review covers only the beginning of a long function."""
    covered = len(sent.splitlines())
    total = len(source.splitlines())
    return (
        f"This review covers only the first {covered} of {total} lines of {qualified_name}: the function is "
        f"longer than the review budget of {max_chars} characters, so the rest was not reviewed."
    )


class Analysis:
    """Answers POST /analyze/function from the job store, the snapshot cache and the gateway."""

    def __init__(
        self,
        jobs: JobStore,
        snapshots: SnapshotCache,
        reviewer: Reviewer,
        *,
        wait_timeout_s: float,
        source_max_chars: int,
    ) -> None:
        self.jobs = jobs
        self.snapshots = snapshots
        self.reviewer = reviewer
        self.wait_timeout_s = wait_timeout_s
        self.source_max_chars = source_max_chars

    async def find(self, job_id: str, function_name: str) -> locate.FoundFunction:
        """The function in the job's files, waiting for the job if it is still being fetched.

        Raises the analyzer errors for a bad name (422), an unknown job or function (404), a job
        not ready or failed (409), a file that does not parse (422), NATS trouble (503).
        """
        name = check_function_name(function_name)
        job_id_var.set(check_job_id(job_id))  # checked first: a huge id must not reach the logs
        record = await self.jobs.wait_ready(job_id, self.wait_timeout_s)
        if record.snapshot is None:
            raise SnapshotUnavailable(
                f"job {job_id} is ready but names no stored snapshot; start a new job", job_id=job_id
            )
        loaded = await self.snapshots.get(record.snapshot)
        return find_function(loaded, name)

    async def review(self, job_id: str, function_name: str, *, request_id: str | None = None) -> list[str]:
        """The gateway's suggestions for the function, led by a notice if its source had to be cut.

        Raises what `find` raises, and GatewayError (502) / GatewayTimeout (504).
        """
        found = await self.find(job_id, function_name)
        sent, was_cut = truncate_source(found.source, self.source_max_chars)
        started = time.perf_counter()
        suggestions = await self.reviewer.review(sent, request_id=request_id)
        logger.info(
            "reviewed %s (%s:%d-%d, %d characters%s): %d suggestions, gateway %.0f ms",
            found.qualified_name,
            found.path,
            found.start_line,
            found.end_line,
            len(found.source),
            f", cut to {len(sent)}" if was_cut else "",
            len(suggestions),
            (time.perf_counter() - started) * 1000,
        )
        if was_cut:
            return [cut_notice(found.qualified_name, sent, found.source, self.source_max_chars), *suggestions]
        return suggestions
