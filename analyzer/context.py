"""Where a reviewed function stands in its repository, as the gateway is told (`review_context`).

The gateway checks the function inside its module, under the repository's ruff configuration, with
the type checker's findings on its lines, and gives the model what the function uses from the
repository (review_contract.ReviewContext says what each field means). Everything here reads the
snapshot's text; nothing of the repository runs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from threading import Lock

from analyzer import locate
from analyzer.lintconfig import LintConfigs
from analyzer.snapshots import LoadedSnapshot
from analyzer.sources import SourceDecodeError, decode_source
from analyzer.uses import uses_of
from review_contract import MAX_CONTEXT_CHARS, MAX_MODULE_BYTES, ReviewContext, TypeFinding

logger = logging.getLogger("analyzer.context")

# Snapshots whose lint configuration stays resolved (the snapshot cache holds a few more).
_CONFIGS_KEPT = 32


class ContextBuilder:
    """Builds the context of found functions; keeps each snapshot's resolved lint configuration."""

    def __init__(self, *, uses_max_chars: int = MAX_CONTEXT_CHARS) -> None:
        self.uses_max_chars = uses_max_chars
        self._configs: OrderedDict[str, LintConfigs] = OrderedDict()
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
        data = loaded.snapshot.files.get(found.path)
        if data is None or len(data) > MAX_MODULE_BYTES:
            return None
        try:
            module = decode_source(data)
        except SourceDecodeError:
            return None
        rows = module.splitlines(keepends=True)
        span = "".join(rows[found.start_line - 1 : found.end_line])
        if span.rstrip("\r\n") != found.indent + found.source.rstrip("\r\n"):
            return None
        try:
            uses = uses_of(loaded.index, found, max_chars=self.uses_max_chars)
        except Exception:  # context for the model is a help, never a reason to fail the review
            logger.warning("what %s uses could not be gathered", found.qualified_name, exc_info=True)
            uses = ""
        return ReviewContext(
            path=found.path,
            module=module,
            start_line=found.start_line,
            end_line=found.end_line,
            lint=self._lint_configs(loaded).for_path(found.path),
            types=types,
            uses=uses,
        )
