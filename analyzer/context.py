"""Where a reviewed function stands in its repository, as the gateway is told (`review_context`).

The gateway checks the function inside its module, under the repository's ruff configuration, with
the type checker's findings on its lines, and gives the model what the function uses from the
repository (review_contract.ReviewContext says what each field means). Everything here reads the
snapshot's text; nothing of the repository runs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from threading import Lock
from typing import Any, TypeVar

from analyzer import locate
from analyzer.lintconfig import LintConfigs
from analyzer.snapshots import LoadedSnapshot
from analyzer.sources import Lines, SourceDecodeError, decode_source
from analyzer.uses import uses_of
from review_contract import MAX_CONTEXT_CHARS, MAX_MODULE_BYTES, ReviewContext, TypeFinding

logger = logging.getLogger("analyzer.context")

# Snapshots whose lint configuration stays resolved (the snapshot cache holds a few more).
_CONFIGS_KEPT = 32
# Modules whose text stays decoded (at most MAX_MODULE_BYTES each, so at most 32 MB), and
# functions whose uses stay gathered (at most `uses_max_chars` each): a function asked for again
# costs no decode and no uses_of (~1 ms), only its type findings, which change once the check ends.
_MODULES_KEPT = 32
_USES_KEPT = 1024
# A module that is not reviewed in context: over MAX_MODULE_BYTES, or it does not decode.
_ALONE = Lines("")

_T = TypeVar("_T")


class ContextBuilder:
    """Builds the context of found functions; keeps each snapshot's resolved lint configuration."""

    def __init__(self, *, uses_max_chars: int = MAX_CONTEXT_CHARS) -> None:
        self.uses_max_chars = uses_max_chars
        self._configs: OrderedDict[str, LintConfigs] = OrderedDict()
        self._modules: OrderedDict[tuple[str, str], Lines] = OrderedDict()
        self._uses: OrderedDict[tuple[str, str, int, int], str] = OrderedDict()
        self._lock = Lock()

    def build(
        self, loaded: LoadedSnapshot, found: locate.FoundFunction, types: list[TypeFinding] | None
    ) -> ReviewContext | None:
        """The context of `found`, or None when the function is to be checked on its own.

        None when its module is larger than MAX_MODULE_BYTES, does not decode, or its lines do not
        hold the found source as it is (several definitions joined by the index). Synchronous:
        call it in a thread (it may parse files of the snapshot for `uses`).
        """
        module = self._remembered(
            self._modules, (loaded.key, found.path), _MODULES_KEPT, lambda: self._module(loaded, found)
        )
        if not module.text:
            return None
        # Lines as ast numbers them (Lines splits where the tokenizer does, not at form feeds).
        starts, size = module.starts, len(module.text)
        begin = starts[found.start_line - 1] if found.start_line <= len(starts) else size
        end = starts[found.end_line] if found.end_line < len(starts) else size
        if module.text[begin:end].rstrip("\r\n") != found.indent + found.source.rstrip("\r\n"):
            return None
        uses = self._remembered(
            self._uses,
            (loaded.key, found.path, found.start_line, found.end_line),
            _USES_KEPT,
            lambda: self._uses_of(loaded, found),
        )
        configs = self._remembered(
            self._configs, loaded.key, _CONFIGS_KEPT, lambda: LintConfigs(loaded.snapshot.configs)
        )
        return ReviewContext(
            path=found.path,
            module=module.text,
            start_line=found.start_line,
            end_line=found.end_line,
            lint=configs.for_path(found.path),
            types=types,
            uses=uses,
        )

    def _remembered(self, memory: OrderedDict[Any, _T], key: Any, kept: int, make: Callable[[], _T]) -> _T:
        """`memory[key]`, made by `make` (outside the lock) if missing; the `kept` most recent stay."""
        with self._lock:
            if key in memory:
                memory.move_to_end(key)
                return memory[key]
        value = make()
        with self._lock:
            memory[key] = value
            while len(memory) > kept:
                memory.popitem(last=False)
        return value

    @staticmethod
    def _module(loaded: LoadedSnapshot, found: locate.FoundFunction) -> Lines:
        data = loaded.snapshot.files.get(found.path)
        if data is None or len(data) > MAX_MODULE_BYTES:
            return _ALONE
        try:
            return Lines(decode_source(data))
        except SourceDecodeError:
            return _ALONE

    def _uses_of(self, loaded: LoadedSnapshot, found: locate.FoundFunction) -> str:
        try:
            return uses_of(loaded.index, found, max_chars=self.uses_max_chars)
        except Exception:  # context for the model is a help, never a reason to fail the review
            logger.warning("what %s uses could not be gathered", found.qualified_name, exc_info=True)
            return ""
