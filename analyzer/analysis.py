"""The review of one function: the job's snapshot -> the function's source -> the gateway's suggestions."""

from __future__ import annotations

import ast
import asyncio
import io
import logging
import re
import time
import tokenize
from dataclasses import dataclass

from analyzer import locate
from analyzer.context import ContextBuilder
from analyzer.errors import (
    FunctionNotFound,
    InvalidFunctionName,
    SearchOverBudget,
    SnapshotUnavailable,
    SourceDoesNotParse,
)
from analyzer.jobs import JobStore, check_job_id
from analyzer.locate import MAX_NAME_CHARS
from analyzer.review import GatewayClient
from analyzer.snapshots import LoadedSnapshot, SnapshotCache
from analyzer.sources import LINE_END
from analyzer.typecheck import TypeChecks
from review_contract import MAX_TYPE_FINDINGS, Finding, ReviewContext, TypeFinding
from servicekit.logs import bind_job_id

logger = logging.getLogger("analyzer.analysis")

# Ends a cut that had to drop an open statement. Worded as prose, with no brackets, colons or
# keywords, so a reviewer's linter does not take it for commented-out code.
CUT_MARK = "# ... the rest of this function is longer than the review budget and was not sent"
# Statement ends tried, from the last, for the longest beginning of a cut function that parses.
_CUT_TRIES = 8
# One line with its line end (the tokenizer's line ends only), or the last line without one.
_LINE = re.compile(r".*?(?:\r\n|\r|\n)|.+", re.DOTALL)


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
    except locate.SearchFailed as exc:
        raise SearchOverBudget(
            f"function_name {name!r} cannot be looked for in {where}: {exc}",
            function_name=name,
        ) from exc


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


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def dedent(source: str, indent: str) -> str:
    """`source` (whose first line starts at its `def`, the later lines indented as in the file) as
    a module of its own: `indent` taken off each later line that has it, so a method parses."""
    if not indent:
        return source
    return re.sub(r"(\r\n|\r|\n)" + re.escape(indent), r"\1", source)


def close_cut(cut: str) -> str:
    """A cut function that parses, so that no review mistakes the cut for a syntax error.

    The longest beginning of whole statements that parses is kept and `CUT_MARK` ends it. When
    there is none (one line cut in the middle), the function's header with `...` stands for it.
    """
    if _parses(cut):
        return cut
    lines = _LINE.findall(cut)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    statement_ends: list[int] = []  # line numbers after which a statement is complete
    colons: list[int] = []  # offsets of the colons outside brackets: where a header may end
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(cut).readline):
            if token.type == tokenize.NEWLINE:
                statement_ends.append(token.end[0])
            elif token.type == tokenize.OP:
                depth += token.string in "([{"
                depth -= token.string in ")]}"
                if token.string == ":" and depth == 0 and token.start[0] <= len(lines):
                    colons.append(starts[token.start[0] - 1] + token.start[1])
    except (tokenize.TokenError, SyntaxError):
        pass  # the cut ends inside a statement: what came before is what counts
    for end in sorted(set(statement_ends), reverse=True)[:_CUT_TRIES]:
        head = "".join(lines[:end])
        if _parses(head):
            return head + ("" if head.endswith(("\n", "\r")) else "\n") + CUT_MARK
    for colon in colons[:_CUT_TRIES]:
        header = cut[: colon + 1] + " ..."
        if _parses(header):
            return header + "\n" + CUT_MARK
    return CUT_MARK


def source_for_review(found: locate.FoundFunction, max_chars: int) -> tuple[str, str | None]:
    """What is sent for review, and the notice that leads the suggestions when it had to be cut.

    The function's whole lines as a module of their own (dedented), cut after a whole line to fit
    in `max_chars`, and closed so that the cut still parses (`close_cut`).
    """
    source = dedent(found.source, found.indent)
    cut, was_cut = truncate_source(source, max_chars)
    if not was_cut:
        return source, None
    covered = len(LINE_END.split(cut))
    total = len(LINE_END.split(source))
    notice = (
        f"This review covers only the first {covered} of {total} lines of {found.qualified_name}: the "
        f"function is longer than the review budget of {max_chars} characters, so the rest was not reviewed."
    )
    sent = close_cut(cut)
    if len(sent) > max_chars:  # the mark or the `...` pushed it over: make room, and close again
        sent = close_cut(truncate_source(cut, max(1, max_chars - len(CUT_MARK) - 1))[0])
    return sent, notice


@dataclass(frozen=True)
class Reviewed:
    """A review as /analyze/function answers it (`suggestions`), and its findings as data."""

    function: locate.FoundFunction
    suggestions: list[str]
    findings: list[Finding]
    # Whether the review saw the function in its module (else it was checked on its own).
    in_context: bool


class Analysis:
    """Answers POST /analyze/function from the job store, the snapshot cache and the gateway."""

    def __init__(
        self,
        jobs: JobStore,
        snapshots: SnapshotCache,
        reviewer: GatewayClient,
        *,
        wait_timeout_s: float,
        source_max_chars: int,
        context: ContextBuilder | None = None,
        typechecks: TypeChecks | None = None,
        typecheck_wait_s: float = 0.0,
    ) -> None:
        self.jobs = jobs
        self.snapshots = snapshots
        self.reviewer = reviewer
        self.wait_timeout_s = wait_timeout_s
        self.source_max_chars = source_max_chars
        self.context = context
        self.typechecks = typechecks
        self.typecheck_wait_s = typecheck_wait_s

    async def find(self, job_id: str, function_name: str) -> locate.FoundFunction:
        """The function in the job's files, waiting for the job if it is still being fetched.

        Raises the analyzer errors for a bad name (422), an unknown job or function (404), a job
        not ready or failed (409), a file that does not parse (422), NATS trouble (503).
        """
        return (await self._locate(job_id, function_name))[1]

    async def _locate(self, job_id: str, function_name: str) -> tuple[LoadedSnapshot, locate.FoundFunction]:
        name = check_function_name(function_name)
        bind_job_id(check_job_id(job_id))  # checked first: a huge id must not reach the logs
        record = await self.jobs.wait_ready(job_id, self.wait_timeout_s)
        if record.snapshot is None:
            raise SnapshotUnavailable(
                f"job {job_id} is ready but names no stored snapshot; start a new job", job_id=job_id
            )
        loaded = await self.snapshots.get(record.snapshot)
        # Off the event loop: a lookup may scan every file of a large snapshot, and wait for a
        # worker process to parse one (analyzer.parsing); other requests are answered meanwhile.
        return loaded, await asyncio.to_thread(find_function, loaded, name)

    async def review(self, job_id: str, function_name: str, *, request_id: str | None = None) -> list[str]:
        """The gateway's suggestions for the function, led by a notice if its source had to be cut.

        Raises what `find` raises, and GatewayFailed (502) / GatewayTimeout (504).
        """
        return (await self.reviewed(job_id, function_name, request_id=request_id)).suggestions

    async def reviewed(self, job_id: str, function_name: str, *, request_id: str | None = None) -> Reviewed:
        """The review of the function with its findings as data; raises what `review` raises."""
        loaded, found = await self._locate(job_id, function_name)
        # A few parses of at most `source_max_chars` characters: off the event loop too.
        sent, notice = await asyncio.to_thread(source_for_review, found, self.source_max_chars)
        context = await self._context(loaded, found)
        started = time.perf_counter()
        suggestions, findings = await self.reviewer.review(sent, context=context, request_id=request_id)
        logger.info(
            "reviewed %s (%s:%d-%d, %d characters%s%s): %d suggestions, gateway %.0f ms",
            found.qualified_name,
            found.path,
            found.start_line,
            found.end_line,
            len(found.source),
            f", cut to {len(sent)}" if notice else "",
            ", in its module" if context is not None else ", on its own",
            len(suggestions),
            (time.perf_counter() - started) * 1000,
        )
        return Reviewed(
            function=found,
            suggestions=[notice, *suggestions] if notice else suggestions,
            findings=findings,
            in_context=context is not None,
        )

    async def _context(self, loaded: LoadedSnapshot, found: locate.FoundFunction) -> ReviewContext | None:
        """Where the function stands in its repository; None to check it on its own."""
        if self.context is None:
            return None
        types: list[TypeFinding] | None = []
        if self.typechecks is not None:
            types = await self.typechecks.findings(
                loaded.key, loaded.snapshot.files, found.path, wait_s=self.typecheck_wait_s
            )
            if types is not None:
                on_its_lines = [f for f in types if found.start_line <= f.line <= found.end_line]
                types = on_its_lines[:MAX_TYPE_FINDINGS]
        return await asyncio.to_thread(self.context.build, loaded, found, types)
