"""Checks of whole modules at once (analyzer -> gateway `POST /checks`), for scans.

A scan does not ask the gateway once per function: it sends a batch of modules, each with the
functions found in it (the analyzer parses; the gateway never needs to), and the gateway runs
ruff once per batch over all of them and answers each function's findings: the same rules,
filters, wording and fingerprints as a single review in context gives that function.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from review_contract.shapes import MAX_MODULE_BYTES, Finding, LintSettings, TypeFinding

# Modules in one request: a batch a ruff run handles in about a second.
MAX_CHECK_MODULES = 200
# Functions named in one module (a generated file can have thousands; more is not a review).
MAX_CHECK_FUNCTIONS = 5_000
# The type checker's findings sent for one module.
MAX_MODULE_TYPE_FINDINGS = 2_000

_PATH = Annotated[str, msgspec.Meta(max_length=4_096)]
_NAME = Annotated[str, msgspec.Meta(max_length=1_000)]
_LINE = Annotated[int, msgspec.Meta(ge=1)]


class CheckedFunction(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A function of the module: its dotted name (as `/analyze/function` takes it) and its lines
    in the module (1-based, inclusive, decorators included as the analyzer locates them)."""

    name: _NAME
    start_line: _LINE
    end_line: _LINE


class ModuleToCheck(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One file of the repository: its path from the repository root, its text, the repository's
    ruff settings for it (None: no configuration), the type checker's findings in it (None: the
    type check did not run) and the functions to report findings for."""

    path: _PATH
    module: Annotated[str, msgspec.Meta(max_length=MAX_MODULE_BYTES)]
    functions: Annotated[list[CheckedFunction], msgspec.Meta(max_length=MAX_CHECK_FUNCTIONS)]
    lint: LintSettings | None = None
    types: Annotated[list[TypeFinding], msgspec.Meta(max_length=MAX_MODULE_TYPE_FINDINGS)] | None = None


class ChecksRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    modules: Annotated[list[ModuleToCheck], msgspec.Meta(max_length=MAX_CHECK_MODULES)]


class FunctionFindings(msgspec.Struct, kw_only=True, frozen=True):
    """The findings of one function, lines in the repository file, as a review in context says them."""

    name: str
    findings: list[Finding]


class ModuleFindings(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A module's functions with findings (functions without any are left out). `error`: the module
    could not be checked (ruff failed on it, over a limit); its functions then have no findings."""

    path: str
    functions: list[FunctionFindings] = []
    error: str | None = None


class RuleInfo(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What a rule is, for SARIF's rule list and for people: ruff's name for it ("mutable-argument-
    default"), one sentence, and where its documentation is (None: none known)."""

    name: str
    summary: str
    url: str | None = None


class ChecksResponse(msgspec.Struct, kw_only=True, frozen=True):
    modules: list[ModuleFindings]
    # Every rule that a finding above names.
    rules: dict[str, RuleInfo] = {}
