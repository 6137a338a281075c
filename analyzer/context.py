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
from typing import Any

from analyzer import locate
from analyzer.lintconfig import LintConfigs
from analyzer.snapshots import LoadedSnapshot
from analyzer.sources import SourceDecodeError, decode_source
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
_ALONE = ""


class ContextBuilder:
    """Builds the context of found functions; keeps each snapshot's resolved lint configuration."""

    def __init__(self, *, uses_max_chars: int = MAX_CONTEXT_CHARS) -> None:
        self.uses_max_chars = uses_max_chars
        self._configs: OrderedDict[str, LintConfigs] = OrderedDict()
        self._modules: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._uses: OrderedDict[tuple[str, str, int, int], str] = OrderedDict()
        self._lock = Lock()

    def _lint_configs(self, loaded: LoadedSnapshot) -> LintConfigs:
        with self._lock:
            configs = self._configs.get(loaded.key)
            if configs is None:
                configs = LintConfigs(loaded.snapshot.configs)
                self._configs[loaded.key] = configs
                while len(self._configs) > _CONFIGS_KEPT:
                    self._configs.popitem(last=False)
            else:
                self._configs.move_to_end(loaded.key)
            return configs

    def build(
        self, loaded: LoadedSnapshot, found: locate.FoundFunction, types: list[TypeFinding] | None
    ) -> ReviewContext | None:
        """The context of `found`, or None when the function is to be checked on its own.

        None when its module is larger than MAX_MODULE_BYTES, does not decode, or its lines do not
        hold the found source as it is (several definitions joined by the index). Synchronous:
        call it in a thread (it may parse files of the snapshot for `uses`).
        """
        module = self._remembered(
            self._modules, (loaded.key, found.path), _MODULES_KEPT, self._module, loaded, found
        )
        if not module:
            return None
        rows = module.splitlines(keepends=True)
        span = "".join(rows[found.start_line - 1 : found.end_line])
        if span.rstrip("\r\n") != found.indent + found.source.rstrip("\r\n"):
            return None
        uses = self._remembered(
            self._uses,
            (loaded.key, found.path, found.start_line, found.end_line),
            _USES_KEPT,
            self._uses_of,
            loaded,
            found,
        )
        return ReviewContext(
            path=found.path,
            module=module,
            start_line=found.start_line,
            end_line=found.end_line,
            lint=self._lint_configs(loaded).for_path(found.path),
            types=types,
            uses=uses,
        )

    def _remembered(
        self,
        memory: OrderedDict[Any, str],
        key: Any,
        kept: int,
        make: Callable[[LoadedSnapshot, locate.FoundFunction], str],
        loaded: LoadedSnapshot,
        found: locate.FoundFunction,
    ) -> str:
        with self._lock:
            value = memory.get(key)
            if value is not None:
                memory.move_to_end(key)
                return value
        value = make(loaded, found)
        with self._lock:
            memory[key] = value
            while len(memory) > kept:
                memory.popitem(last=False)
        return value

    @staticmethod
    def _module(loaded: LoadedSnapshot, found: locate.FoundFunction) -> str:
        data = loaded.snapshot.files.get(found.path)
        if data is None or len(data) > MAX_MODULE_BYTES:
            return _ALONE
        try:
            return decode_source(data) or _ALONE
        except SourceDecodeError:
            return _ALONE

    def _uses_of(self, loaded: LoadedSnapshot, found: locate.FoundFunction) -> str:
        try:
            return uses_of(loaded.index, found, max_chars=self.uses_max_chars)
        except Exception:  # context for the model is a help, never a reason to fail the review
            logger.warning("what %s uses could not be gathered", found.qualified_name, exc_info=True)
            return ""
