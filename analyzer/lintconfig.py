"""The repository's own ruff configuration for one of its files, found and merged as ruff would.

From the snapshot's configuration files (`Snapshot.configs`: every `pyproject.toml`, `ruff.toml`
and `.ruff.toml`, path -> bytes), never from anything outside it:

- **Which file.** The closest one in the file's folder or above, up to the repository's root; in
  one folder `.ruff.toml` beats `ruff.toml` beats `pyproject.toml`, and a `pyproject.toml` without
  a `[tool.ruff]` table is passed over (ruff's `settings_toml`). `ruff.toml` has no `tool.ruff`
  prefix.
- **extend.** `extend = "../base.toml"` is resolved relative to the file that says it, and only
  to a configuration file of the snapshot: an absolute path, `~`, `$VAR`, a path leaving the
  repository or one the snapshot does not hold is logged and the chain stops there (what was
  read so far counts); so does a cycle, or more than MAX_EXTEND_DEPTH extends. The files merge as
  ruff's `Configuration::combine` does: line length, docstring convention and `per-file-ignores`
  from the closest file that sets them, `extend-per-file-ignores` from all, and the rule
  selections of each file applied in turn, from the base to the file itself.
- **What is read.** `lint.select` / `lint.extend-select` / `lint.ignore` / `lint.extend-ignore`,
  `lint.per-file-ignores` / `lint.extend-per-file-ignores` (each also at the top level, ruff's
  deprecated form; the `lint` table wins), `line-length` and `lint.pydocstyle.convention`.
  Per-file patterns are relative to the folder of the file that holds them and match the file's
  path or its name, with globset's rules (analyzer.globs). Nothing else is read: `exclude`,
  `target-version`, `preview`, plugin options and so on are not.
- **Into one LintSettings.** ruff applies each selection in turn (a later `select` starts afresh;
  a later `ignore` or `extend-select` wins over an earlier one whatever its specificity), then
  removes the per-file ignores. The gateway runs ruff with one selection, where a more specific
  selector wins, so those later rules are folded in here: a later ignore drops the earlier
  selectors it covers, a later `extend-select` drops the earlier ignores it covers.

Whatever a repository holds, a lookup ends with LintSettings or None and never raises: a file
over MAX_CONFIG_BYTES, TOML that does not parse (or is nested or dotted past what the parser
handles in bounded time), a value of the wrong type, a selector that is not a rule code, more
selectors than LintSettings allows or a per-file pattern globset refuses make the result None
(the gateway's default then applies), logged once as a WARNING naming the file and the reason.

Cost: tomllib is pure Python and holds the GIL while it runs (in slices); its time and memory
grow with the number of keys, tables and values, so a document with more than MAX_TOML_MARKS of
them, or a key of more than MAX_KEY_DOTS parts, is refused before parsing (the worst that passes:
0.4 s and 40 MB). A real configuration is a few KiB and parses in milliseconds. LintConfigs parses
each file once, and all it parses for one snapshot stay within MAX_PARSED_BYTES, the per-file
patterns it compiles within MAX_REGEX_CHARS.
"""

from __future__ import annotations

import logging
import posixpath
import re
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import msgspec

from analyzer.globs import GlobError, compile_glob
from jobs_contract.messages import CONFIG_FILE_NAMES
from review_contract import LintSettings

logger = logging.getLogger("analyzer.lintconfig")

# A configuration file larger than this is not parsed (the fetcher keeps none larger by default:
# FETCHER_MAX_CONFIG_BYTES).
MAX_CONFIG_BYTES = 1 << 20
# All configuration files parsed for one snapshot together: bounds the CPU a repository can cost.
MAX_PARSED_BYTES = 2 << 20
# `extend` links followed from the file that applies.
MAX_EXTEND_DEPTH = 10
# The most selectors in each list of LintSettings (its contract's bound; a test keeps them equal).
MAX_SELECTORS = 2000
# tomllib's time and memory grow with the keys, tables and values of a document, not its bytes:
# 1 MiB of short dotted keys took 3.4 s and 273 MB, of table headers 1.4 s and 80 MB, of array
# items 1.4 s. So the marks that make them (`.`, `=`, `[`, `{`, `,` outside one-line strings) are
# counted before parsing, and a document with more is refused: a real pyproject.toml has a few
# hundred to a few thousand.
MAX_TOML_MARKS = 50_000
# A dotted key of n parts costs tomllib O(n^2) time and memory (16,000 parts: 2.4 s and 1 GB):
# keys with more dots than this are refused before parsing. Real keys have a handful.
MAX_KEY_DOTS = 64
# per-file-ignores entries of one table, the length of each pattern, and the regexes compiled for
# one snapshot (about 4 us a character to compile: 0.8 s at most; a real table needs a few thousand).
MAX_PATTERNS = 256
MAX_PATTERN_CHARS = 512
MAX_REGEX_CHARS = 200_000

PYPROJECT = "pyproject.toml"
Convention = Literal["google", "numpy", "pep257"]
CONVENTIONS: dict[str, Convention] = {"google": "google", "numpy": "numpy", "pep257": "pep257"}
# ruff's line-length bounds (LineLength: 1..=320).
MAX_LINE_LENGTH = 320
# Rule codes and prefixes as ruff spells them ("E", "E501", "PLR0913", "ALL"); anything else is
# refused, as ruff refuses unknown selectors, and nothing else reaches ruff's command line.
_SELECTOR = re.compile(r"[A-Z][A-Z0-9]{0,99}")
# A quoted part of a key, as TOML lexes it on one line.
# (Unrolled: a group repeated per character makes `re` keep state per character, 121 MB for a
# 1 MiB string.)
_QUOTED = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\n]*\'')


class _UnusableError(Exception):
    """A configuration ruff would refuse too, or one past our bounds; the message says why."""


@dataclass(slots=True)
class _Budget:
    """What is left to spend on one snapshot's configuration files."""

    parse_bytes: int = MAX_PARSED_BYTES
    regex_chars: int = MAX_REGEX_CHARS


@dataclass(frozen=True, slots=True)
class _Selection:
    """One file's rule selection (ruff's RuleSelection): `select` None when the file sets none."""

    select: tuple[str, ...] | None
    extend_select: tuple[str, ...]
    ignore: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _PerFileIgnore:
    """One per-file-ignores entry, its pattern compiled against the folder of the file holding it."""

    pattern: str
    negated: bool
    basename: re.Pattern[str]
    # None: the pattern is absolute or leaves the repository, so no file of the snapshot is under it.
    absolute: re.Pattern[str] | None
    rules: tuple[str, ...]

    def matches(self, path: str) -> bool:
        name = posixpath.basename(path)
        hit = self.basename.match(name) is not None or (
            self.absolute is not None and self.absolute.match("/" + path) is not None
        )
        return hit != self.negated


@dataclass(frozen=True, slots=True)
class _Options:
    """What one configuration file says, of what is read."""

    extend: str | None = None
    selection: _Selection = _Selection(select=None, extend_select=(), ignore=())
    per_file_ignores: tuple[_PerFileIgnore, ...] | None = None
    extend_per_file_ignores: tuple[_PerFileIgnore, ...] = ()
    line_length: int | None = None
    convention: Convention | None = None
    target_version: str | None = None
    preview: bool | None = None


_EMPTY = _Options()


@dataclass(frozen=True, slots=True)
class _Resolved:
    """The configuration that applies to a folder, its extends merged in; per-file ignores still apart."""

    source: str
    select: tuple[str, ...] | None
    extend_select: tuple[str, ...]
    ignore: tuple[str, ...]
    per_file_ignores: tuple[_PerFileIgnore, ...]
    line_length: int | None
    convention: Convention | None
    target_version: str | None
    preview: bool


def lint_settings_for(configs: Mapping[str, bytes], path: str) -> LintSettings | None:
    """The repository's ruff settings for the file at `path` (a snapshot path), or None.

    None: no configuration applies, or the one that applies cannot be used (logged). Never
    raises. It parses afresh on every call: for several files of one snapshot, keep one
    LintConfigs.
    """
    return LintConfigs(configs).for_path(path)


class LintConfigs:
    """The lint configuration of one snapshot: each file parsed once, each folder resolved once.

    Build one per snapshot and ask `for_path` for each file; safe to call from several threads
    (one lookup at a time; a lookup that has to parse is the only slow one).
    """

    def __init__(self, configs: Mapping[str, bytes]) -> None:
        self._configs = configs
        self._lock = threading.Lock()
        self._parsed: dict[str, _Options | None] = {}
        self._refused: dict[str, str] = {}
        self._budget = _Budget()
        self._closest: dict[str, str | None] = {}
        self._resolved: dict[str, _Resolved | None] = {}
        self._settings: dict[str, LintSettings | None] = {}

    def for_path(self, path: str) -> LintSettings | None:
        """The settings for the file at `path` (a snapshot path), or None; see the module docstring."""
        with self._lock:
            if path in self._settings:
                return self._settings[path]
            try:
                settings = self._settings_for(path)
            except Exception:  # a defect here must not fail the review: it goes without settings
                logger.exception("the lint configuration for %r could not be resolved", path)
                settings = None
            self._settings[path] = settings
            return settings

    # -- one file ---------------------------------------------------------------------------

    def _settings_for(self, path: str) -> LintSettings | None:
        source = self._closest_config(path.split("/")[:-1])
        if source is None:
            return None
        resolved = self._resolve(source)
        if resolved is None:
            return None
        select: list[str] | None = None if resolved.select is None else list(resolved.select)
        extend_select, ignore = list(resolved.extend_select), list(resolved.ignore)
        file_ignores = [
            rule for entry in resolved.per_file_ignores if entry.matches(path) for rule in entry.rules
        ]
        # ruff removes per-file ignores after the selection, whatever their specificity.
        select, extend_select, ignore = _later(select, extend_select, ignore, [], file_ignores)
        settings = LintSettings(
            source=source,
            select=select,
            extend_select=extend_select,
            ignore=ignore,
            line_length=resolved.line_length,
            docstring_convention=resolved.convention,
            target_version=resolved.target_version,
            preview=resolved.preview,
        )
        try:
            # What the gateway will decode: the contract's bounds, applied here and not there.
            return msgspec.json.decode(msgspec.json.encode(settings), type=LintSettings)
        except msgspec.ValidationError as error:
            _warn(source, f"not used for {path!r}: {error}")
            return None

    # -- which configuration file -----------------------------------------------------------

    def _closest_config(self, folders: Sequence[str]) -> str | None:
        """The configuration file that applies in the folder `folders` (its parts), memoized per folder."""
        pending: list[str] = []
        found: str | None = None
        for depth in range(len(folders), -1, -1):
            folder = "/".join(folders[:depth])
            if folder in self._closest:
                found = self._closest[folder]
                break
            pending.append(folder)
            found = self._config_in(folder)
            if found is not None:
                break
        for folder in pending:
            self._closest[folder] = found
        return found

    def _config_in(self, folder: str) -> str | None:
        for name in CONFIG_FILE_NAMES:
            path = f"{folder}/{name}" if folder else name
            if path not in self._configs:
                continue
            if name != PYPROJECT:
                return path
            try:
                if self._load(path) is not None:
                    return path
            except _UnusableError:
                # ruff stops at a pyproject.toml it cannot read (and fails): so does the lookup.
                return path
        return None

    # -- extend chains ------------------------------------------------------------------------

    def _resolve(self, source: str) -> _Resolved | None:
        if source in self._resolved:
            return self._resolved[source]
        try:
            resolved: _Resolved | None = _merged(source, self._chain(source))
        except _UnusableError as error:
            # The file itself was logged when it was refused; say which configuration it breaks.
            if str(error):
                _warn(source, f"not used: {error}")
            resolved = None
        self._resolved[source] = resolved
        return resolved

    def _chain(self, source: str) -> list[_Options]:
        """The options of `source` and of the files it extends, closest first; raises _UnusableError."""
        chain: list[_Options] = []
        seen: list[str] = []
        path = source
        while True:
            try:
                options = self._load(path) or _EMPTY
            except _UnusableError:
                if path != source:
                    _warn(source, f"not used: it extends {path!r}, which cannot be used")
                raise
            chain.append(options)
            seen.append(path)
            if options.extend is None:
                return chain
            target, why_not = self._extend_target(path, options.extend)
            if target is None:
                stop = f"which {why_not}"
            elif target in seen:
                stop = "a cycle: " + " extends ".join(repr(p) for p in [*seen, target])
            elif len(seen) > MAX_EXTEND_DEPTH:
                stop = f"past {MAX_EXTEND_DEPTH} extends"
            else:
                path = target
                continue
            _warn(path, f"extends {_shown(options.extend)}, {stop}: read up to there")
            return chain

    def _extend_target(self, path: str, extend: str) -> tuple[str | None, str]:
        """The snapshot path `extend` names from the file at `path`, or (None, why not)."""
        if not extend:
            return None, "is empty"
        if extend.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", extend):
            return None, "is an absolute path, outside the repository"
        if extend.startswith("~"):
            return None, "is in a home folder, outside the repository"
        if "$" in extend:
            return None, "names an environment variable, never read"
        parts: list[str] = []
        for part in [*path.split("/")[:-1], *extend.split("/")]:
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    return None, "leaves the repository"
                parts.pop()
            else:
                parts.append(part)
        target = "/".join(parts)
        if target not in self._configs:
            return None, "is not among the repository's configuration files (only ruff's are kept)"
        return target, ""

    # -- one configuration file ---------------------------------------------------------------

    def _load(self, path: str) -> _Options | None:
        """The options of the file at `path`; None for a pyproject.toml without [tool.ruff].

        Raises _UnusableError (logged the first time) for a file that cannot be used.
        """
        if path in self._parsed:
            return self._parsed[path]
        if path in self._refused:
            raise _UnusableError("")
        try:
            options = self._parse(path)
        except _UnusableError as error:
            self._refused[path] = str(error)
            _warn(path, f"not used: {error}")
            raise _UnusableError("") from None
        self._parsed[path] = options
        return options

    def _parse(self, path: str) -> _Options | None:
        data = self._configs[path]
        if len(data) > MAX_CONFIG_BYTES:
            raise _UnusableError(f"{len(data)} bytes, over the {MAX_CONFIG_BYTES} read")
        pyproject = posixpath.basename(path) == PYPROJECT
        if pyproject and b"ruff" not in data:
            # No [tool.ruff] table can be in it: most pyproject.toml files cost nothing.
            return None
        if len(data) > self._budget.parse_bytes:
            raise _UnusableError(
                f"the repository's configuration files parsed so far pass {MAX_PARSED_BYTES} bytes"
            )
        self._budget.parse_bytes -= len(data)
        document = _toml(data)
        if pyproject:
            tool = document.get("tool")
            if tool is None:
                return None
            if not isinstance(tool, dict):
                raise _UnusableError("`tool` is not a table")
            table = tool.get("ruff")
            if table is None:
                return None
            if not isinstance(table, dict):
                raise _UnusableError("`tool.ruff` is not a table")
        else:
            table = document
        options = _options(table, posixpath.dirname(path), self._budget)
        if pyproject and options.target_version is None:
            # As ruff does: without `target-version`, the project's `requires-python` decides.
            project = document.get("project")
            requires = project.get("requires-python") if isinstance(project, dict) else None
            if isinstance(requires, str):
                options = replace(options, target_version=_target_of(requires))
        return options


def _toml(data: bytes) -> dict[str, Any]:
    """The parsed document; raises _UnusableError for what is not TOML or would cost the parser too much."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _UnusableError(f"not UTF-8 ({error.reason} at byte {error.start})") from None
    # One-line strings as TOML lexes them (a multi-line string's lines count as unquoted, which
    # only ever overcounts).
    unquoted = _QUOTED.sub('""', text)
    marks = sum(unquoted.count(mark) for mark in ".=[{,")
    if marks > MAX_TOML_MARKS:
        raise _UnusableError(
            f"{marks} keys, tables and values (counted by their . = [ {{ ,), over the {MAX_TOML_MARKS} parsed"
        )
    for number, line in enumerate(unquoted.splitlines(), start=1):
        # Cheap first: only a line with many dots at all can hold a key with many.
        if line.count(".") > MAX_KEY_DOTS:
            key = line if line.lstrip().startswith("[") else line.partition("=")[0]
            if key.count(".") > MAX_KEY_DOTS:
                raise _UnusableError(f"line {number} has a key of more than {MAX_KEY_DOTS} dotted parts")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _UnusableError(f"not valid TOML: {error}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion: a few hundred levels deep
        # reach the interpreter's limit, at once and harmlessly.
        raise _UnusableError("nested too deeply to parse") from None


def _options(table: dict[str, Any], folder: str, budget: _Budget) -> _Options:
    """The options read from a ruff table (ruff.toml's document, or pyproject.toml's tool.ruff)."""
    lint = table.get("lint", {})
    if not isinstance(lint, dict):
        raise _UnusableError("`lint` is not a table")

    def pick(key: str) -> Any:
        # ruff merges its deprecated top-level lint options under the `lint` table's.
        return lint[key] if key in lint else table.get(key)

    extend = table.get("extend")
    if extend is not None and not isinstance(extend, str):
        raise _UnusableError("`extend` is not a string")
    select = pick("select")
    selection = _Selection(
        select=None if select is None else _selectors(select, "select"),
        extend_select=_selectors(pick("extend-select"), "extend-select"),
        ignore=_selectors(pick("ignore"), "ignore") + _selectors(pick("extend-ignore"), "extend-ignore"),
    )
    per_file = pick("per-file-ignores")
    per_file_ignores = (
        None if per_file is None else _per_file_ignores(per_file, folder, "per-file-ignores", budget)
    )
    line_length = table.get("line-length")
    if line_length is not None and (type(line_length) is not int or not 1 <= line_length <= MAX_LINE_LENGTH):
        raise _UnusableError(
            f"`line-length` is {_shown(line_length)}, not a whole number from 1 to {MAX_LINE_LENGTH}"
        )
    target_version = table.get("target-version")
    if target_version is not None and not (
        isinstance(target_version, str) and _TARGET.fullmatch(target_version)
    ):
        raise _UnusableError(f'`target-version` is {_shown(target_version)}, not a version such as "py311"')
    preview = pick("preview")
    if preview is not None and not isinstance(preview, bool):
        raise _UnusableError(f"`preview` is {_shown(preview)}, not true or false")
    return _Options(
        target_version=target_version,
        preview=preview,
        extend=extend,
        selection=selection,
        per_file_ignores=per_file_ignores,
        extend_per_file_ignores=_per_file_ignores(
            pick("extend-per-file-ignores"), folder, "extend-per-file-ignores", budget
        ),
        line_length=line_length,
        convention=_convention(lint.get("pydocstyle"), table.get("pydocstyle")),
    )


def _convention(*tables: Any) -> Convention | None:
    """`pydocstyle.convention` from the first table that sets it (`lint.pydocstyle`, then the top level's)."""
    for pydocstyle in tables:
        if pydocstyle is None:
            continue
        if not isinstance(pydocstyle, dict):
            raise _UnusableError("`pydocstyle` is not a table")
        convention = pydocstyle.get("convention")
        if convention is None:
            continue
        if not isinstance(convention, str) or convention not in CONVENTIONS:
            raise _UnusableError(
                f"`pydocstyle.convention` is {_shown(convention)}, not one of {', '.join(CONVENTIONS)}"
            )
        return CONVENTIONS[convention]
    return None


def _selectors(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _UnusableError(f"`{key}` is not a list")
    if len(value) > MAX_SELECTORS:
        raise _UnusableError(f"`{key}` has {len(value)} selectors, over the {MAX_SELECTORS} read")
    for selector in value:
        if not isinstance(selector, str) or not _SELECTOR.fullmatch(selector):
            raise _UnusableError(f"`{key}` holds {_shown(selector)}, which is not a rule code")
    return tuple(value)


def _per_file_ignores(value: Any, folder: str, key: str, budget: _Budget) -> tuple[_PerFileIgnore, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _UnusableError(f"`{key}` is not a table")
    if len(value) > MAX_PATTERNS:
        raise _UnusableError(f"`{key}` has {len(value)} patterns, over the {MAX_PATTERNS} read")
    entries: list[_PerFileIgnore] = []
    for pattern, rules in value.items():
        if len(pattern) > MAX_PATTERN_CHARS:
            raise _UnusableError(
                f"`{key}` has a pattern of {len(pattern)} characters, over the {MAX_PATTERN_CHARS} read"
            )
        negated = pattern.startswith("!")
        bare = pattern[1:] if negated else pattern
        try:
            basename = compile_glob(bare, budget.regex_chars)
            budget.regex_chars -= len(basename.pattern)
            absolute = _absolute(folder, bare, budget.regex_chars)
            budget.regex_chars -= 0 if absolute is None else len(absolute.pattern)
        except GlobError as error:
            raise _UnusableError(f"`{key}` pattern {_shown(pattern)}: {error}") from None
        entries.append(
            _PerFileIgnore(
                pattern=pattern,
                negated=negated,
                basename=basename,
                absolute=absolute,
                rules=_selectors(rules, f"{key}.{_shown(pattern)}"),
            )
        )
    return tuple(entries)


def _absolute(folder: str, pattern: str, max_regex_chars: int) -> re.Pattern[str] | None:
    """The pattern joined to the folder of its file, `..` resolved as ruff does (by name), or None.

    Matched against "/" + the file's snapshot path: the snapshot's root stands for the folder
    ruff would run in. None for an absolute pattern or one that leaves the repository.
    """
    if pattern.startswith("/"):
        return None
    parts: list[str] = []
    for part in [*folder.split("/"), *pattern.split("/")]:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return compile_glob("/" + "/".join(parts), max_regex_chars)


# -- merging ----------------------------------------------------------------------------------


def _merged(source: str, chain: Sequence[_Options]) -> _Resolved:
    """The chain (closest first) merged as ruff's Configuration::combine merges it."""
    select: list[str] | None = None
    extend_select: list[str] = []
    ignore: list[str] = []
    carried: tuple[str, ...] = ()
    for options in reversed(chain):
        selection = options.selection
        ignores = (*selection.ignore, *carried)
        carried = ()
        if selection.select is not None:
            select, extend_select, ignore = (
                list(selection.select),
                list(selection.extend_select),
                list(ignores),
            )
            # As in ruff, `select = []` with only ignores hands them on to the next selection.
            if not selection.select and not selection.extend_select and selection.ignore:
                carried = selection.ignore
        else:
            select, extend_select, ignore = _later(
                select, extend_select, ignore, selection.extend_select, ignores
            )
    for name, values in (("select", select or []), ("extend-select", extend_select), ("ignore", ignore)):
        if len(values) > MAX_SELECTORS:
            raise _UnusableError(
                f"its `{name}` comes to {len(values)} selectors with its extends, over {MAX_SELECTORS}"
            )
    per_file = next((o.per_file_ignores for o in chain if o.per_file_ignores is not None), ())
    extend_per_file = [entry for options in reversed(chain) for entry in options.extend_per_file_ignores]
    return _Resolved(
        source=source,
        select=None if select is None else tuple(select),
        extend_select=tuple(extend_select),
        ignore=tuple(ignore),
        per_file_ignores=(*per_file, *extend_per_file),
        line_length=next((o.line_length for o in chain if o.line_length is not None), None),
        convention=next((o.convention for o in chain if o.convention is not None), None),
        target_version=next((o.target_version for o in chain if o.target_version is not None), None),
        preview=next((o.preview for o in chain if o.preview is not None), False),
    )


_TARGET = re.compile(r"py3[0-9]{1,2}")
_LOWEST = re.compile(r"(>=|~=|==|>)\s*3\.([0-9]{1,2})")


def _target_of(requires_python: str) -> str | None:
    """ruff's target version for a `requires-python` specifier (">=3.9" -> "py39"), or None."""
    found = _LOWEST.search(requires_python)
    if found is None:
        return None
    operator, minor = found.group(1), int(found.group(2))
    return f"py3{minor + 1 if operator == '>' else minor}"


def _covered(selector: str, by: set[str]) -> bool:
    """Whether a selector in `by` covers `selector` (the same, a prefix of it, or ALL)."""
    if "ALL" in by:
        return True
    return selector != "ALL" and any(selector[:end] in by for end in range(1, len(selector) + 1))


def _later(
    select: list[str] | None,
    extend_select: list[str],
    ignore: list[str],
    new_extend_select: Iterable[str],
    new_ignore: Iterable[str],
) -> tuple[list[str] | None, list[str], list[str]]:
    """One selection (extend-select and ignore only) applied after the others, as ruff applies it.

    ruff lets the later selection win whatever the specificity; in one selection a more specific
    selector wins. So the earlier selectors a later one covers are dropped before it is added.
    """
    enabled, disabled = list(new_extend_select), list(new_ignore)
    if not enabled and not disabled:
        return select, extend_select, ignore
    enabled_set, disabled_set = set(enabled), set(disabled)
    if select is not None:
        select = [s for s in select if not _covered(s, disabled_set)]
    extend_select = [s for s in extend_select if not _covered(s, disabled_set)]
    ignore = [s for s in ignore if not _covered(s, enabled_set)]
    return select, _unique([*extend_select, *enabled]), _unique([*ignore, *disabled])


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _warn(path: str, reason: str) -> None:
    """One WARNING about a configuration file, control characters (from the repository) escaped."""
    printable = "".join(char if char.isprintable() else repr(char)[1:-1] for char in reason)
    logger.warning("the lint configuration %r: %s", path, printable)


def _shown(value: object) -> str:
    """A value from the repository, for a log line: repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
