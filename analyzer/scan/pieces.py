"""Check one piece of a scan: its files' functions, through the gateway's `POST /checks` (ruff and the
type checker's findings, whole modules at once) and, in a "model" scan, the model's review of each
function within the scan's budget.

What the analyzer knows goes with each module: its text from the snapshot, every function with its
dotted name (as `/analyze/function` takes it) and its lines (decorators included, as a lookup
finds them), the repository's ruff settings for the file, and the type checker's findings in it
(from the whole snapshot's check, waited for a bounded time, else None). Parsing happens in the
parser pool's worker processes, each file within the parse budget (analyzer.parsing); everything
else that walks a file runs in a thread, never on the event loop.

A file that cannot be checked is skipped with the reason (not in the snapshot, not a `.py` file,
over MAX_MODULE_BYTES or the parse budget, not text, a syntax error, too many functions, the
gateway could not check it), never a crash. A gateway that fails (GatewayFailed / GatewayTimeout)
fails the piece: the work queue delivers it again, and no half-checked piece is reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar

from analyzer.analysis import source_for_review
from analyzer.context import ContextBuilder
from analyzer.lintconfig import LintConfigs
from analyzer.locate.tables import Parsed, Unparsable
from analyzer.parsing import ParserPool, chunks
from analyzer.review import GatewayClient
from analyzer.scan.model import ModelBudget, Piece, PieceResult
from analyzer.snapshots import LoadedSnapshot
from analyzer.sources import SourceDecodeError, decode_source
from analyzer.typecheck import TypeChecks
from review_contract import MAX_MODULE_BYTES, MAX_TYPE_FINDINGS, LintSettings, TypeFinding
from review_contract.checks import (
    MAX_CHECK_FUNCTIONS,
    MAX_CHECK_MODULES,
    MAX_MODULE_TYPE_FINDINGS,
    CheckedFunction,
    ChecksRequest,
    ChecksResponse,
    ModuleToCheck,
    RuleInfo,
)
from review_contract.scan import ScanFinding, SkippedFile

if TYPE_CHECKING:
    from analyzer.settings import Settings

logger = logging.getLogger("analyzer.scan.pieces")

# The rule of the model's own suggestions, as the gateway names it (gateway/findings.py MODEL_RULE).
MODEL_RULE = "model"
MODEL_RULE_INFO = RuleInfo(name=MODEL_RULE, summary="A suggestion of the review model.")
# Bytes of module text in one `POST /checks` (the gateway's ruff reads them in about a second),
# and requests in flight at once for one piece (the gateway runs one ruff per request).
CHECKS_REQUEST_BYTES = 4_000_000
CHECKS_IN_FLIGHT = 2
# Bytes of files a parser worker is given at once: ~1 s of parsing, so both workers stay busy.
PARSE_CHUNK_BYTES = 1_000_000
_T = TypeVar("_T")
# Snapshots whose lint configuration stays resolved (pieces of a few scans at once).
_CONFIGS_KEPT = 8


@dataclass(frozen=True, slots=True)
class _Function:
    qualname: str
    checked: CheckedFunction


@dataclass(slots=True)
class _Module:
    path: str
    text: str
    functions: list[_Function]
    lint: LintSettings | None
    types: list[TypeFinding] | None


@dataclass(slots=True)
class _Outcome:
    """What one piece found so far."""

    files: int = 0
    functions: int = 0
    findings: list[ScanFinding] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    asked: int = 0
    tokens: int = 0
    exhausted: bool = False


class GatewayPieceChecker:
    """Checks pieces of scans (analyzer.scan.model.PieceChecker).

    `parser` parses the files no lookup or warm-up has parsed yet (in its worker processes, within
    its budget); `gateway` answers `POST /checks` and, in "model" scans, each function's review;
    `context` builds that review's context (None: the function is reviewed alone); `typechecks`
    gives the whole snapshot's type check, waited for at most `typecheck_wait_s` from its start
    (None, or not done by then: modules go without types). At most `model_concurrency` reviews
    are in flight per piece; `source_max_chars` cuts a function sent to the model, as
    `/analyze/function` does.
    """

    def __init__(
        self,
        *,
        parser: ParserPool,
        gateway: GatewayClient,
        context: ContextBuilder | None = None,
        typechecks: TypeChecks | None = None,
        typecheck_wait_s: float = 60.0,
        model_concurrency: int = 2,
        source_max_chars: int = 12_000,
        request_bytes: int = CHECKS_REQUEST_BYTES,
    ) -> None:
        if model_concurrency < 1:
            raise ValueError(f"model_concurrency must be at least 1, got {model_concurrency}")
        self.parser = parser
        self.gateway = gateway
        self.context = context
        self.typechecks = typechecks
        self.typecheck_wait_s = typecheck_wait_s
        self.model_concurrency = model_concurrency
        self.source_max_chars = source_max_chars
        self.request_bytes = request_bytes
        self._configs: OrderedDict[str, LintConfigs] = OrderedDict()
        self._lock = Lock()

    @classmethod
    def of(
        cls,
        settings: Settings,
        *,
        parser: ParserPool,
        gateway: GatewayClient,
        context: ContextBuilder | None,
        typechecks: TypeChecks | None,
    ) -> GatewayPieceChecker:
        """The checker the analyzer's settings describe."""
        return cls(
            parser=parser,
            gateway=gateway,
            context=context,
            typechecks=typechecks,
            typecheck_wait_s=settings.analyzer_scan_typecheck_wait_s,
            model_concurrency=settings.analyzer_scan_model_concurrency,
            source_max_chars=settings.analyzer_source_max_chars,
        )

    async def check(self, piece: Piece, loaded: LoadedSnapshot, budget: ModelBudget | None) -> PieceResult:
        """The findings of the piece's files (of the functions overlapping `piece.lines` in a pull
        request scan), the files skipped and why, and in a "model" scan what the model was asked.

        Without a `budget`, a "model" scan asks the model about every function. Raises
        GatewayFailed (502) / GatewayTimeout (504) when the gateway fails (the piece is then to be
        delivered again), RuntimeError when the parser pool is closed.
        """
        started = time.perf_counter()
        outcome = _Outcome()
        paths = list(dict.fromkeys(piece.paths))  # a path named twice is checked once
        wanted = self._wanted(loaded, paths, piece, outcome)
        types, _ = await asyncio.gather(self._types(loaded, wanted), self._parse(loaded, wanted))
        modules = await asyncio.to_thread(self._modules, loaded, wanted, piece, types, outcome)
        await self._checks(modules, outcome)
        if piece.mode == "model":
            await self._model(loaded, modules, budget, outcome)
        logger.info(
            "scan %s piece %d: %d files, %d functions, %d findings, %d skipped%s in %.0f ms",
            piece.scan_id,
            piece.index,
            outcome.files,
            outcome.functions,
            len(outcome.findings),
            len(outcome.skipped),
            f", model asked {outcome.asked} ({outcome.tokens} tokens"
            f"{', budget spent' if outcome.exhausted else ''})"
            if piece.mode == "model"
            else "",
            (time.perf_counter() - started) * 1000,
        )
        return PieceResult(
            files=outcome.files,
            functions=outcome.functions,
            findings=outcome.findings,
            skipped=outcome.skipped,
            rules=outcome.rules,
            functions_asked=outcome.asked,
            tokens_used=outcome.tokens,
            budget_exhausted=outcome.exhausted,
        )

    # -- which files, parsed, with their types --------------------------------------------------

    def _wanted(self, loaded: LoadedSnapshot, paths: list[str], piece: Piece, outcome: _Outcome) -> list[str]:
        """The paths to check; the others are skipped (with the reason) or, in a pull request scan,
        left out when the pull request changes no line of them."""
        files = loaded.snapshot.files
        wanted: list[str] = []
        for path in paths:
            if piece.lines is not None and not piece.lines.get(path):
                continue
            data = files.get(path)
            reason = None
            if data is None:
                reason = loaded.snapshot.skipped.get(path)
                reason = f"not in the snapshot: {reason}" if reason else "not in the snapshot"
            elif not path.endswith(".py"):
                reason = "not Python (only .py files are checked; a .pyi stub is not)"
            elif len(data) > MAX_MODULE_BYTES:
                reason = f"{len(data)} bytes: over the limit of {MAX_MODULE_BYTES} bytes (MAX_MODULE_BYTES)"
            elif len(data) > self.parser.budget.max_bytes:
                reason = f"over the parse budget: {self.parser.budget.too_big(len(data)).error}"
            if reason is not None:
                outcome.skipped.append(SkippedFile(path=path, reason=reason))
            else:
                wanted.append(path)
        return wanted

    async def _parse(self, loaded: LoadedSnapshot, paths: list[str]) -> None:
        """Parse the paths no lookup or warm-up has parsed yet, in the parser's workers (a worker
        task per chunk, so both workers share a large piece); the index keeps the tables."""
        index = loaded.index
        unparsed = index.unparsed()
        todo = {path: unparsed[path] for path in paths if path in unparsed}
        if todo:
            tables = await asyncio.gather(
                *(self.parser.parse_files(group) for group in chunks(todo, PARSE_CHUNK_BYTES))
            )
            for table in tables:
                index.adopt(table)

    async def _types(self, loaded: LoadedSnapshot, paths: list[str]) -> dict[str, list[TypeFinding] | None]:
        """The type checker's findings in each path (None: the check failed, set the file aside, or
        has not ended within `typecheck_wait_s` of its start)."""
        if self.typechecks is None:
            return dict.fromkeys(paths)
        files = loaded.snapshot.files
        found: dict[str, list[TypeFinding] | None] = {}
        for path in paths:  # the first waits for the check; the rest are answered at once
            found[path] = await self.typechecks.findings(
                loaded.key, files, path, wait_s=self.typecheck_wait_s
            )
        return found

    def _lint(self, loaded: LoadedSnapshot) -> LintConfigs:
        with self._lock:
            configs = self._configs.get(loaded.key)
            if configs is None:
                configs = self._configs[loaded.key] = LintConfigs(loaded.snapshot.configs)
                while len(self._configs) > _CONFIGS_KEPT:
                    self._configs.popitem(last=False)
            self._configs.move_to_end(loaded.key)
            return configs

    # -- in a thread: the modules and their functions --------------------------------------------

    def _modules(
        self,
        loaded: LoadedSnapshot,
        paths: list[str],
        piece: Piece,
        types: dict[str, list[TypeFinding] | None],
        outcome: _Outcome,
    ) -> list[_Module]:
        index = loaded.index
        configs = self._lint(loaded)
        modules: list[_Module] = []
        for path in paths:
            try:
                table = index.table(path)  # parsed already, unless its workers kept dying: then now
            except KeyError:  # a `.py` path the index does not hold (an unsafe name)
                outcome.skipped.append(SkippedFile(path=path, reason="not a module the index holds"))
                continue
            if isinstance(table, Unparsable):
                outcome.skipped.append(SkippedFile(path=path, reason=_unparsable(table)))
                continue
            assert isinstance(table, Parsed)
            file = index.source_file(path)
            module = ".".join(file.display_module)
            changed = None if piece.lines is None else piece.lines.get(path, [])
            functions = list(_functions(table, module, changed))
            if len(functions) > MAX_CHECK_FUNCTIONS:
                outcome.skipped.append(
                    SkippedFile(
                        path=path,
                        reason=f"{len(functions)} functions: more than {MAX_CHECK_FUNCTIONS} in one module "
                        "(a generated file is not reviewed)",
                    )
                )
                continue
            if not functions:  # looked at, and nothing of it is to be reported
                outcome.files += 1
                continue
            try:
                text = decode_source(loaded.snapshot.files[path])
            except SourceDecodeError as error:  # it parsed, so it decodes; said, should it not
                outcome.skipped.append(SkippedFile(path=path, reason=f"not text: {error}"))
                continue
            found = types.get(path)
            modules.append(
                _Module(
                    path=path,
                    text=text,
                    functions=functions,
                    lint=configs.for_path(path),
                    types=None if found is None else found[:MAX_MODULE_TYPE_FINDINGS],
                )
            )
        return modules

    # -- the gateway's checks ---------------------------------------------------------------------

    async def _checks(self, modules: list[_Module], outcome: _Outcome) -> None:
        """Every module through `POST /checks`, in batches, at most CHECKS_IN_FLIGHT at once."""
        slots = asyncio.Semaphore(CHECKS_IN_FLIGHT)

        async def one(batch: list[_Module]) -> tuple[list[_Module], ChecksResponse]:
            request = ChecksRequest(
                modules=[
                    ModuleToCheck(
                        path=m.path,
                        module=m.text,
                        functions=[f.checked for f in m.functions],
                        lint=m.lint,
                        types=m.types,
                    )
                    for m in batch
                ]
            )
            async with slots:
                return batch, await self.gateway.checks(request)

        answers = await _all(one(batch) for batch in _batches(modules, self.request_bytes))
        for batch, answer in answers:
            await asyncio.to_thread(_take_answer, batch, answer, outcome)

    # -- the model ---------------------------------------------------------------------------------

    async def _model(
        self, loaded: LoadedSnapshot, modules: list[_Module], budget: ModelBudget | None, outcome: _Outcome
    ) -> None:
        """Each checked function's review by the model, in order, while the budget allows; its
        suggestions become findings of rule MODEL_RULE."""
        skipped = {s.path for s in outcome.skipped}
        queue: Iterator[tuple[_Module, _Function]] = iter(
            [(m, f) for m in modules if m.path not in skipped for f in m.functions]
        )

        async def worker() -> None:
            for module, function in queue:  # shared: each function is taken by one worker
                if outcome.exhausted:
                    return
                if budget is not None and not await budget.take():
                    outcome.exhausted = True
                    return
                outcome.asked += 1
                tokens = await self._review(loaded, module, function, outcome)
                outcome.tokens += tokens
                if budget is not None:
                    await budget.spend(tokens)

        await _all(worker() for _ in range(self.model_concurrency))

    async def _review(
        self, loaded: LoadedSnapshot, module: _Module, function: _Function, outcome: _Outcome
    ) -> int:
        """Ask the model about one function (through the gateway's review and its cache); the
        tokens it used."""
        found = await asyncio.to_thread(loaded.index.function, module.path, function.qualname)
        sent, _ = await asyncio.to_thread(source_for_review, found, self.source_max_chars)
        context = None
        if self.context is not None:
            # The review's own rules: only the type findings on the function's lines.
            types = None
            if module.types is not None:
                types = [t for t in module.types if found.start_line <= t.line <= found.end_line]
                types = types[:MAX_TYPE_FINDINGS]
            context = await asyncio.to_thread(self.context.build, loaded, found, types)
        review = await self.gateway.reviewed(sent, context=context)
        name = function.checked.name
        said = [f for f in review.findings if f.rule == MODEL_RULE]
        if said:
            outcome.rules.setdefault(MODEL_RULE, MODEL_RULE_INFO)
            outcome.findings.extend(ScanFinding.of(f, path=module.path, function=name) for f in said)
        return review.tokens


def _unparsable(table: Unparsable) -> str:
    if table.undecodable:
        return f"not text: {table.error}"
    if "ANALYZER_PARSE_" in table.error:  # the budget's own words name its setting
        return f"over the parse budget: {table.error}"
    if table.error.startswith("line "):
        return f"a syntax error, {table.error}"
    return f"does not parse: {table.error}"


def _functions(table: Parsed, module: str, changed: Sequence[tuple[int, int]] | None) -> Iterator[_Function]:
    """The functions and methods of a parsed module, in line order: dotted name, first line (its
    first decorator's) and last line of all its definitions (a getter and its setter are one name,
    as a lookup finds them). A function defined inside another function (or in a class inside one)
    is part of that function, reviewed with it, so each line is reported under one function. With
    `changed`, only those whose lines overlap a changed range."""
    functions = {
        qualname: defs
        for qualname, spans in table.definitions.items()
        if (defs := [s for s in spans if s.function])
    }
    found: list[_Function] = []
    for qualname, defs in functions.items():
        parts = qualname.split(".")
        if any(".".join(parts[:end]) in functions for end in range(1, len(parts))):
            continue
        start, end = defs[0].start_line, max(s.end_line for s in defs)
        if changed is not None and not any(first <= end and start <= last for first, last in changed):
            continue
        name = f"{module}.{qualname}" if module else qualname
        found.append(_Function(qualname, CheckedFunction(name=name, start_line=start, end_line=end)))
    found.sort(key=lambda f: (f.checked.start_line, f.checked.name))
    return iter(found)


def _batches(modules: list[_Module], max_bytes: int) -> Iterator[list[_Module]]:
    """Modules in groups of at most MAX_CHECK_MODULES and about `max_bytes` of text (a larger
    module is a group of its own)."""
    batch: list[_Module] = []
    size = 0
    for module in modules:
        if batch and (len(batch) == MAX_CHECK_MODULES or size + len(module.text) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(module)
        size += len(module.text)
    if batch:
        yield batch


def _take_answer(batch: list[_Module], answer: ChecksResponse, outcome: _Outcome) -> None:
    """The gateway's answer for one batch into the outcome: each function's findings, a module it
    could not check skipped with its reason. Names it was not sent are not taken."""
    sent = {m.path: m for m in batch}
    errors = {m.path: m.error for m in answer.modules if m.error is not None}
    for path, error in errors.items():
        if path in sent:
            outcome.skipped.append(SkippedFile(path=path, reason=f"not checked by the gateway: {error}"))
    for module in batch:
        if module.path not in errors:
            outcome.files += 1
            outcome.functions += len(module.functions)
    unknown = 0
    for checked in answer.modules:
        asked = sent.get(checked.path)
        if asked is None or checked.path in errors:
            unknown += asked is None
            continue
        lines = {f.checked.name: f.checked.end_line - f.checked.start_line for f in asked.functions}
        # One finding said of two functions whose lines overlap (a getter and setter with a method
        # between them): kept once, for the narrowest.
        kept: dict[tuple[str, int | None, int | None, str], tuple[int, ScanFinding]] = {}
        for function in checked.functions:
            width = lines.get(function.name)
            if width is None:
                unknown += 1
                continue
            for finding in function.findings:
                said = (finding.rule, finding.line, finding.column, finding.message)
                if said in kept and kept[said][0] <= width:
                    continue
                kept[said] = (width, ScanFinding.of(finding, path=checked.path, function=function.name))
                if finding.rule in answer.rules:
                    outcome.rules.setdefault(finding.rule, answer.rules[finding.rule])
        outcome.findings.extend(found for _, found in kept.values())
    if unknown:
        logger.warning(
            "the gateway's checks named %d modules or functions it was not sent: left out", unknown
        )


async def _all(calls: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """The results of the calls, run together; the first that fails cancels the others (awaited,
    so none outlives the piece) and its error is raised."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
