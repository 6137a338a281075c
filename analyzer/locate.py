"""Find the function a user names in the files of one commit, and give its exact source.

Names look like `pkg.sub.module.func`, `module.Class.Inner.method`, `module.outer.inner`, or any
suffix of such a name (`mod.func` for `pkg/mod.py`, `Inner.method`, even `func` alone). A name is
split into a module part and a definition part at every dot; a file is a candidate when its
module matches,

1. exactly, from the repository root (`src.pkg.mod` for `src/pkg/mod.py`), else
2. from a source root (`pkg.mod` for `src/pkg/mod.py`; the roots are `src/`, `lib/`, `python/`
   and a folder named like the repository, unless that folder is itself a package), else
3. as a suffix of the full dotted name (`mod.func`, `Class.method`, `func`).

Within a tier, non-test code wins over test code, `.py` over `.pyi`, then the shortest path
(fewest folders, then fewest characters, then alphabetical order), so the choice is predictable
and does not depend on the order of the files.

When no file of a tier defines the name where it says, the imports of that tier's modules the
name's prefix names are followed (`httpx.Client.send` through `from ._client import Client` in
`httpx/__init__.py`, star imports, aliases, chains of them, at most `MAX_REEXPORT_HOPS` deep)
before the next tier is tried, and the answer names where the definition really is. The order:
direct exact, re-export by an exact module, direct source-root, re-export by a source-root
module, direct suffix, re-export by a suffix module; so `pkg.run` re-exported by
`pkg/__init__.py` beats a `vendor/pkg.py` that defines `run`.

Building a `SnapshotIndex` only splits paths; a file is decoded and parsed the first time a
lookup needs it, once, and only the positions of its definitions are kept.
"""

from __future__ import annotations

import ast
import difflib
import gc
import itertools
import keyword
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from analyzer.sources import LINE_END, Lines, SourceDecodeError, decode_source

SOURCE_ROOTS = frozenset({"src", "lib", "python"})
MAX_NAME_LENGTH = 1000
# Deeper than any real package path plus nesting (Python allows 100 levels of indentation).
MAX_NAME_PARTS = 100
MAX_SUGGESTIONS = 5
# How many imports a name may go through (a re-export of a re-export...) before the walk gives up.
MAX_REEXPORT_HOPS = 10
# How many (file, name) steps one walk through imports may take in all: star imports fan out.
_MAX_REEXPORT_STEPS = 64
# How many files a suggestion search may parse, per kind of typo: a 404 stays cheap.
_SUGGEST_FILES = 5
# How many re-exported names close to the one asked for a suggestion search follows, per module.
_SUGGEST_REEXPORTS = 3

# Folders and files that hold tests, compared in lower case.
_TEST_DIRS = frozenset({"test", "tests", "testing", "unittests", "unit_tests"})
# One part of a name: an identifier, or a file stem that is not one (`my-tool`, `2to3`).
_NAME_PART = re.compile(r"[\w-]+")
# `def name` / `class name` anywhere in the bytes: a cheap, over-inclusive filter that says which
# files may define a name (parsing decides). Two plain patterns beat one alternation: each keeps
# the literal prefix the regex engine scans for.
_DEF_NAMES = re.compile(rb"def[ \t]+([A-Za-z_\x80-\xff][\w\x80-\xff]*)")
_CLASS_NAMES = re.compile(rb"class[ \t]+([A-Za-z_\x80-\xff][\w\x80-\xff]*)")
_TEXT_NAMES = re.compile(r"(?:def|class)[ \t]+([^\W\d]\w*)")
_LOCALS = "<locals>"
# Names looked up by scanning the bytes before the index of every name is built instead.
_SCANS_BEFORE_INDEX = 4
# Candidate tiers, best first.
_EXACT, _SOURCE_ROOT, _SUFFIX = 0, 1, 2
_PARSER = f"Python {sys.version_info.major}.{sys.version_info.minor}"


class LocateError(Exception):
    """Base of the errors a lookup raises."""


class InvalidFunctionName(LocateError, ValueError):  # noqa: N818 - the name the app maps to 422
    """The name is empty or is not a dotted Python name."""


class FunctionNotFound(LocateError, LookupError):  # noqa: N818 - the name the app maps to 404
    """No function or class of that name exists in the snapshot."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        message = f"no function named {_shown(name)} in this repository"
        if suggestions:
            message += "; close names that exist: " + ", ".join(suggestions)
        super().__init__(message)


class SourceDoesNotParse(LocateError):  # noqa: N818 - the name the app maps to an HTTP error
    """The file that holds the name cannot be read as Python (Python 2, a syntax error, bad bytes)."""

    def __init__(self, name: str, path: str, error: str, via: str | None = None) -> None:
        self.name = name
        self.path = path
        self.error = error
        # The file whose import led to `path`, when the name reached it through a re-export.
        self.via = via
        # The message stands alone (the app answers it as is): one line, the file, why, the name.
        reached = f" (which {via} imports from there)" if via else ""
        super().__init__(
            f"{path} does not parse as {_PARSER}, so {_shown(name)}{reached} cannot be read from it: "
            + " ".join(error.split())
        )


@dataclass(frozen=True, slots=True)
class FoundFunction:
    """A function (or class) found by name, with its exact source text.

    `source` is the original text from the first decorator to the end of the body, as
    `ast.get_source_segment` gives it plus the decorator lines. When the name has several
    definitions in its file (property getter and setter, `@overload`s, `if`/`else` variants),
    `source` holds all of them in source order: joined by the original text between them when
    that is only blank lines and comments, else by one blank line. The lines span from the
    first to the last; `definitions` says how many there are.
    """

    qualified_name: str
    path: str
    source: str
    start_line: int
    end_line: int
    definitions: int = 1


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


@dataclass(frozen=True, slots=True)
class _Span:
    start_line: int
    end_line: int
    # Offsets into the decoded text: the definition is text[start:end].
    start: int
    end: int


# A module-level name bound by an import or a plain alias, as (kind, level, module, attribute):
# `from ..a.b import c as d` binds d to ("from", 2, "a.b", "c"); `import a.b as m` binds m to
# ("import", 0, "a.b", ""); `import a.b` binds a to ("import", 0, "a", ""); `d = c.e` binds d to
# ("alias", 0, "", "c.e"), a name of the same module.
_Binding = tuple[str, int, str, str]
_FROM, _IMPORT, _ALIAS = "from", "import", "alias"


@dataclass(frozen=True, slots=True)
class _Parsed:
    # Dotted name inside the module ("Class.method", "outer.inner") -> definitions in source order.
    # Only positions are kept; the text is decoded again from the snapshot's bytes when needed.
    definitions: dict[str, list[_Span]]
    # Module-level names bound by imports (and plain aliases), each binding in source order.
    bindings: dict[str, tuple[_Binding, ...]] = field(default_factory=dict)
    # `from <level dots><module> import *`, in source order.
    stars: tuple[tuple[int, str], ...] = ()
    # The names a literal `__all__` lists (`=`, `+=`); None when the module assigns no `__all__`.
    exports: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class _Unparsable:
    error: str


# What parsing one file leaves: the positions of its definitions, or why it does not parse.
# Opaque to callers; picklable, so `parse_files` can run in another process.
ParsedFile = _Parsed | _Unparsable


@dataclass(frozen=True, slots=True)
class _File:
    path: str
    # Module name from the repository root, and from its source root when it has one.
    module: tuple[str, ...]
    root_module: tuple[str, ...] | None
    # (test code, stub, folders, characters, path): smaller is preferred.
    rank: tuple[int, int, int, int, str]

    @property
    def display_module(self) -> tuple[str, ...]:
        return self.root_module if self.root_module is not None else self.module


def _shown(name: str) -> str:
    """A name as error messages quote it: whole, unless it is very long."""
    return repr(name if len(name) <= 200 else name[:200] + "...")


def _normalize(part: str) -> str:
    # Python compares identifiers after NFKC normalization; `ast` names are normalized already.
    return part if part.isascii() else unicodedata.normalize("NFKC", part)


def _is_test_path(folders: list[str], filename: str) -> bool:
    for folder in folders:
        lowered = folder.lower()
        if lowered in _TEST_DIRS or lowered.startswith("test_") or lowered.endswith(("_test", "_tests")):
            return True
    lowered = filename.lower()
    return (
        lowered.startswith("test_")
        or lowered.endswith(("_test.py", "_tests.py"))
        or lowered
        in {
            "conftest.py",
            "test.py",
            "tests.py",
        }
    )


def _repo_folder_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1]
    name = name.removesuffix(".git")
    return name.lower().replace("-", "_")


def _describe_file(path: str, repo_folder: str, packages: set[str]) -> _File | None:
    if path.endswith(".py"):
        stem, stub = path[:-3], 0
    elif path.endswith(".pyi"):
        stem, stub = path[:-4], 1
    else:
        return None
    # A dot in a folder or file name (`config-3.11/`, `setup.cfg.py`) reads as a dot in the
    # dotted name, which is how anyone would type it.
    parts = [_normalize(p) for folder in stem.split("/") for p in folder.split(".") if p]
    if not parts:
        return None
    folders = parts[:-1]
    module = tuple(parts[:-1]) if parts[-1] == "__init__" else tuple(parts)
    root_module: tuple[str, ...] | None = None
    if len(module) > 1:
        first = module[0].lower()
        # A root folder that is itself a package (`litestar/__init__.py` in the litestar repo)
        # is part of the importable name, not a place that holds packages.
        is_root = first in SOURCE_ROOTS or first.replace("-", "_") == repo_folder
        if is_root and module[0] not in packages:
            root_module = module[1:]
    rank = (int(_is_test_path(folders, path.rsplit("/", 1)[-1])), stub, len(folders), len(path), path)
    return _File(path=path, module=module, root_module=root_module, rank=rank)


def _parse_name(name: str) -> list[str]:
    if not isinstance(name, str):
        raise InvalidFunctionName("the function name must be a string")
    text = name.strip()
    if not text:
        raise InvalidFunctionName("the function name is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidFunctionName(f"the function name is longer than {MAX_NAME_LENGTH} characters")
    parts = text.split(".")
    if len(parts) > MAX_NAME_PARTS:
        raise InvalidFunctionName(f"the function name has more than {MAX_NAME_PARTS} dotted parts")
    if any(not part for part in parts):
        raise InvalidFunctionName(
            f"{_shown(text)} is not a dotted name: it has an empty part (a leading, trailing or double dot)"
        )
    # A __qualname__ pasted from Python ("outer.<locals>.inner") names the same function.
    parts = [part for part in parts if part != _LOCALS]
    for part in parts:
        if not _NAME_PART.fullmatch(part):
            raise InvalidFunctionName(
                f"{_shown(text)} is not a dotted name like 'package.module.function' or "
                f"'module.Class.method': {_shown(part)} is not a name"
            )
    if not parts:
        raise InvalidFunctionName(f"{_shown(text)} names no function")
    last = _normalize(parts[-1])
    if not last.isidentifier() or keyword.iskeyword(last):
        raise InvalidFunctionName(
            f"{_shown(text)} is not a function name: {parts[-1]!r} is not a Python identifier"
        )
    return [_normalize(part) for part in parts]


def _collect(body: Iterable[ast.stmt], prefix: str, out: dict[str, list[_Span]], lines: Lines) -> None:
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            qualname = prefix + statement.name
            out.setdefault(qualname, []).append(_span(statement, lines))
            _collect(statement.body, qualname + ".", out, lines)
        elif isinstance(statement, ast.If | ast.For | ast.AsyncFor | ast.While):
            _collect(statement.body, prefix, out, lines)
            _collect(statement.orelse, prefix, out, lines)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            _collect(statement.body, prefix, out, lines)
        elif isinstance(statement, ast.Try | ast.TryStar):
            _collect(statement.body, prefix, out, lines)
            for handler in statement.handlers:
                _collect(handler.body, prefix, out, lines)
            _collect(statement.orelse, prefix, out, lines)
            _collect(statement.finalbody, prefix, out, lines)
        elif isinstance(statement, ast.Match):
            for case in statement.cases:
                _collect(case.body, prefix, out, lines)


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: Lines) -> _Span:
    end_line = node.end_lineno if node.end_lineno is not None else node.lineno
    end = lines.offset(end_line, node.end_col_offset if node.end_col_offset is not None else 0)
    if not node.decorator_list:
        return _Span(node.lineno, end_line, lines.offset(node.lineno, node.col_offset), end)
    # A decorator statement starts its line, so its `@` is the line's first character after the
    # indentation; the expression after it may start later (`@ name`, `@\` + newline).
    line = node.decorator_list[0].lineno
    while line > 1 and not lines.line(line).lstrip(" \t\f").startswith("@"):
        line -= 1
    text = lines.line(line)
    return _Span(line, end_line, lines.starts[line - 1] + len(text) - len(text.lstrip(" \t\f")), end)


def _parse(data: bytes, path: str) -> _Parsed | _Unparsable:
    try:
        text = decode_source(data)
    except SourceDecodeError as error:
        return _Unparsable(str(error))
    # A big module's tree is hundreds of thousands of objects, freed by reference counting as
    # soon as its definitions are read (an AST has no cycles). Left on, the cyclic collector
    # would run hundreds of times during the parse and, on a large heap, do full collections
    # that cost more than the parse. Only switched back on if it was on.
    collector_was_on = gc.isenabled()
    gc.disable()
    try:
        return _definitions(text, path)
    finally:
        if collector_was_on:
            gc.enable()


def _definitions(text: str, path: str) -> _Parsed | _Unparsable:
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as error:
        where = f"line {error.lineno}: " if error.lineno else ""
        return _Unparsable(f"{where}{error.msg}")
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes, absurd nesting
        return _Unparsable(str(error) or type(error).__name__)
    definitions: dict[str, list[_Span]] = {}
    _collect(tree.body, "", definitions, Lines(text))
    for spans in definitions.values():
        spans.sort(key=lambda s: s.start)
    imports = _Imports()
    imports.collect(tree.body)
    return _Parsed(
        definitions=definitions,
        bindings={name: tuple(found) for name, found in imports.bindings.items()},
        stars=tuple(imports.stars),
        exports=None if imports.exports is None else frozenset(imports.exports),
    )


class _Imports:
    """The module-level imports, plain aliases and `__all__` of a module: what re-exports it."""

    def __init__(self) -> None:
        self.bindings: dict[str, list[_Binding]] = {}
        self.stars: list[tuple[int, str]] = []
        self.exports: set[str] | None = None

    def collect(self, body: Iterable[ast.stmt]) -> None:
        # Module level only, through the blocks that do not open a scope (`try: from ._speedups
        # import f` / `except ImportError: from ._pure import f`, `if TYPE_CHECKING:`).
        for statement in body:
            if isinstance(statement, ast.ImportFrom):
                module = statement.module or ""
                for alias in statement.names:
                    if alias.name == "*":
                        self.stars.append((statement.level, module))
                    else:
                        self._bind(alias.asname or alias.name, (_FROM, statement.level, module, alias.name))
            elif isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname:
                        self._bind(alias.asname, (_IMPORT, 0, alias.name, ""))
                    else:
                        first = alias.name.split(".", 1)[0]
                        self._bind(first, (_IMPORT, 0, first, ""))
            elif isinstance(statement, ast.Assign | ast.AnnAssign | ast.AugAssign):
                self._assignment(statement)
            elif isinstance(statement, ast.Expr):
                self._extension(statement.value)
            elif isinstance(statement, ast.If | ast.For | ast.AsyncFor | ast.While):
                self.collect(statement.body)
                self.collect(statement.orelse)
            elif isinstance(statement, ast.With | ast.AsyncWith):
                self.collect(statement.body)
            elif isinstance(statement, ast.Try | ast.TryStar):
                self.collect(statement.body)
                for handler in statement.handlers:
                    self.collect(handler.body)
                self.collect(statement.orelse)
                self.collect(statement.finalbody)

    def _extension(self, node: ast.expr) -> None:
        listed = _listed_by_call(node)
        if listed is not None and self.exports is not None:
            self.exports.update(listed)

    def _bind(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(_normalize(name), []).append(binding)

    def _assignment(self, statement: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if "__all__" in names:
            listed = _literal_strings(statement.value)
            if isinstance(statement, ast.AugAssign) and self.exports is not None:
                self.exports.update(listed or ())
            else:
                # A computed `__all__` lists nothing we can know: no star import goes through it.
                self.exports = set(listed or ())
            return
        if isinstance(statement, ast.AugAssign) or statement.value is None:
            return
        dotted = _dotted(statement.value)
        if dotted is not None:
            for name in names:
                self._bind(name, (_ALIAS, 0, "", dotted))


def _listed_by_call(node: ast.expr) -> list[str] | None:
    """The names `__all__.extend([...])` or `__all__.append("name")` adds; None for other calls."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "__all__"
        and len(node.args) == 1
    ):
        return None
    argument = node.args[0]
    if node.func.attr == "extend":
        return _literal_strings(argument)
    if node.func.attr == "append" and isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return [argument.value]
    return None


def _literal_strings(node: ast.expr | None) -> list[str] | None:
    if not isinstance(node, ast.List | ast.Tuple):
        return None
    strings = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return strings if len(strings) == len(node.elts) else None


def _dotted(node: ast.expr) -> str | None:
    """`a` or `a.b.c` as text; None for anything else (a call, a subscript, a literal)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def parse_files(files: Mapping[str, bytes]) -> dict[str, ParsedFile]:
    """The definition tables of the Python files in `files`, for `SnapshotIndex.adopt`.

    Parsing is CPU work that holds the GIL for a whole file (90 ms for the largest stdlib
    module), so a server that wants every lookup warm runs this in a process pool, not a thread.
    """
    return {path: _parse(data, path) for path, data in files.items() if path.endswith((".py", ".pyi"))}


@dataclass(frozen=True, slots=True)
class _Candidate:
    tier: int
    file: _File
    # How many leading parts of the name are the module part.
    module_parts: int

    @property
    def key(self) -> tuple[int, tuple[int, int, int, int, str], int]:
        return (self.tier, self.file.rank, -self.module_parts)


class SnapshotIndex:
    """The files of one commit, ready to answer which function a name means.

    `files` maps paths from the repository root to raw bytes (`Snapshot.files`); `repo` is the
    repository's name (`owner/name` or `name`), used for the "folder named like the repository"
    source root. Building is cheap; files are parsed on first use and cached. Safe to share
    between threads (the caches only ever gain entries).
    """

    def __init__(self, files: Mapping[str, bytes], repo: str = "") -> None:
        self._data = files
        self._lock = threading.Lock()
        self._parsed: dict[str, _Parsed | _Unparsable] = {}
        self._names: dict[str, set[str]] | None = None
        self._holder_cache: dict[str, frozenset[str]] = {}
        self._by_module: dict[tuple[str, ...], list[_File]] = {}
        self._by_root_module: dict[tuple[str, ...], list[_File]] = {}
        self._by_suffix: dict[tuple[str, ...], list[_File]] = {}
        self._files: dict[str, _File] = {}
        repo_folder = _repo_folder_name(repo)
        packages = {
            _normalize(path.split("/", 1)[0])
            for path in files
            if path.count("/") == 1 and path.endswith(("/__init__.py", "/__init__.pyi"))
        }
        for path in files:
            described = _describe_file(path, repo_folder, packages)
            if described is None:
                continue
            self._files[path] = described
            module = described.module
            self._by_module.setdefault(module, []).append(described)
            if described.root_module is not None:
                self._by_root_module.setdefault(described.root_module, []).append(described)
            for start in range(1, len(module)):
                self._by_suffix.setdefault(module[start:], []).append(described)

    def __len__(self) -> int:
        """How many Python files the index holds."""
        return len(self._files)

    def unparsed(self) -> dict[str, bytes]:
        """The Python files no lookup has parsed yet: what `parse_files` would warm."""
        return {path: self._data[path] for path in self._files if path not in self._parsed}

    def adopt(self, tables: Mapping[str, ParsedFile]) -> int:
        """Take definition tables from `parse_files` run on this snapshot's files; how many were new.

        The tables must come from these very bytes (the same snapshot): positions are not checked
        against the text. Paths this index does not hold are ignored.
        """
        adopted = 0
        for path, table in tables.items():
            if path in self._files and path not in self._parsed:
                if not isinstance(table, _Parsed | _Unparsable):
                    raise TypeError(f"not a table from parse_files: {type(table).__name__} for {path}")
                self._parsed[path] = table
                adopted += 1
        return adopted

    def find(self, name: str) -> FoundFunction:
        """The function (or class) `name` means, with its exact source.

        Raises InvalidFunctionName for an empty or malformed name, FunctionNotFound (with up to
        five close names that exist) when nothing matches, and SourceDoesNotParse when the file
        the name points to cannot be parsed.
        """
        parts = _parse_name(name)
        shown = name.strip()
        # One walk through imports for the whole lookup: a (file, name) tried in a better tier is
        # not tried again.
        walk = _Walk()
        broken: tuple[str, str] | None = None
        for tier in (_EXACT, _SOURCE_ROOT, _SUFFIX):
            found, tier_broken = self._find_directly(parts, tier, shown)
            if found is not None:
                return found
            broken = broken or tier_broken
            # No file of this tier defines the name where it says: maybe one of its modules imports
            # it from where it is defined (`pkg.Client` for `from ._client import Client` in
            # `pkg/__init__.py`). That is what the name means, before any weaker tier.
            found = self._follow_imports(parts, tier, walk)
            if found is not None:
                return found
            if tier < _SUFFIX and walk.broken is not None:
                # The module the name spells out imports it from a file that does not parse:
                # that is the file meant, as for a direct match in this tier.
                raise SourceDoesNotParse(shown, *walk.broken)
        if broken is not None:
            raise SourceDoesNotParse(shown, *broken)
        if walk.broken is not None:
            raise SourceDoesNotParse(shown, *walk.broken)
        raise FunctionNotFound(shown, self._suggest(parts))

    def _find_directly(
        self, parts: list[str], tier: int, shown: str
    ) -> tuple[FoundFunction | None, tuple[str, str] | None]:
        """The best file of `tier` that defines the name where it says, or None, and a broken
        suffix-tier file that looks like it defines it (blamed only if nothing else is found)."""
        last = parts[-1]
        # ASCII names appear verbatim in the bytes of any file that defines them: a cheap check
        # that skips parsing files that cannot hold the name.
        needle = last.encode("ascii") if last.isascii() else None
        broken: tuple[str, str] | None = None
        for candidate in self._candidates(parts, tier):
            path = candidate.file.path
            if needle is not None and needle not in self._data[path]:
                continue
            parsed = self._parse(path)
            if isinstance(parsed, _Unparsable):
                # Blame a broken file only if its text looks like it defines the name. When the
                # name spells out its module, that file is the one meant: say it does not parse.
                # A suffix names no file, so a match in a file that parses wins over it.
                if self._holders(last, within=(path,)):
                    if candidate.tier < _SUFFIX:
                        raise SourceDoesNotParse(shown, path, parsed.error)
                    broken = broken or (path, parsed.error)
                continue
            qualname = ".".join(parts[candidate.module_parts :])
            if candidate.module_parts == 0:
                qualname = _qualname_ending(parsed, qualname) or qualname
            spans = parsed.definitions.get(qualname)
            if spans:
                if candidate.file.rank[1]:
                    # A stub declares what its module's `.py` imports from elsewhere (`attr.define`
                    # in `attr/__init__.pyi`): the implementation, where the `.py` leads, wins.
                    implemented = self._implementation(candidate, parts)
                    if implemented is not None:
                        return implemented, broken
                return self._found(candidate.file, qualname, parsed, spans), broken
        return None, broken

    def _implementation(self, stub: _Candidate, parts: list[str]) -> FoundFunction | None:
        """The definition the `.py` beside a stub reaches through its imports, if it does."""
        module = stub.file.path.removesuffix("i")
        source = self._files.get(module)
        if source is None or not self._data[module]:
            return None
        return self._resolve(source, parts[stub.module_parts :], 0, _Walk())

    def _follow_imports(self, parts: list[str], tier: int, walk: _Walk) -> FoundFunction | None:
        """The definition the name reaches through re-exports, starting from the modules of `tier`
        its prefix names (best ranked first, as for direct matches), or None."""
        table = self._tier_table(tier)
        starts = [
            _Candidate(tier, f, split)
            for split in range(len(parts) - 1, 0, -1)
            for f in table.get(tuple(parts[:split]), ())
        ]
        starts.sort(key=lambda c: c.key)
        for start in starts:
            found = self._resolve(start.file, parts[start.module_parts :], 0, walk)
            if found is not None:
                return found
        return None

    def _tier_table(self, tier: int) -> dict[tuple[str, ...], list[_File]]:
        if tier == _EXACT:
            return self._by_module
        return self._by_root_module if tier == _SOURCE_ROOT else self._by_suffix

    def _resolve(self, file: _File, names: list[str], hops: int, walk: _Walk) -> FoundFunction | None:
        """`names` (a dotted name inside `file`'s module) defined there or reached from there
        through imports; None if not. Each (file, name) is tried once per walk, so cycles end."""
        key = (file.path, tuple(names))
        if key in walk.seen or hops > MAX_REEXPORT_HOPS or len(walk.seen) >= _MAX_REEXPORT_STEPS:
            return None
        walk.seen.add(key)
        parsed = self._parse(file.path)
        if isinstance(parsed, _Unparsable):
            # Reached through an import of the name: this is the file meant, if it looks like it
            # defines the name.
            if hops > 0 and walk.broken is None and self._holders(names[-1], within=(file.path,)):
                walk.broken = (file.path, parsed.error, walk.via)
            return None
        qualname = ".".join(names)
        spans = parsed.definitions.get(qualname)
        if spans:
            return self._found(file, qualname, parsed, spans)
        head, rest = names[0], names[1:]
        # A definition of the head (a class without that method) shadows any import of it.
        if head not in parsed.definitions:
            for binding in parsed.bindings.get(head, ()):
                found = self._through(file, binding, rest, hops + 1, walk)
                if found is not None:
                    return found
            # `pkg.sub.func` where `pkg/__init__.py` names `sub` nowhere: the submodule itself.
            if rest and _is_package(file):
                for sub in self._by_module.get((*file.module, head), ()):
                    walk.via = file.path
                    found = self._resolve(sub, rest, hops + 1, walk)
                    if found is not None:
                        return found
        if head in parsed.definitions or head in parsed.bindings:
            return None
        for level, module in parsed.stars:
            for target in self._module_files(file, level, module):
                table = self._parse(target.path)
                if isinstance(table, _Parsed) and _star_exports(table, head):
                    walk.via = file.path
                    found = self._resolve(target, names, hops + 1, walk)
                    if found is not None:
                        return found
        return None

    def _through(
        self, file: _File, binding: _Binding, rest: list[str], hops: int, walk: _Walk
    ) -> FoundFunction | None:
        """Where one import (or alias) of `file` leads `rest`, the names after the bound one."""
        kind, level, module, attribute = binding
        walk.via = file.path
        if kind == _ALIAS:
            return self._resolve(file, [*attribute.split("."), *rest], hops, walk)
        if kind == _IMPORT:
            return self._resolve_module(file, 0, module, rest, hops, walk)
        for target in self._module_files(file, level, module):
            found = self._resolve(target, [_normalize(attribute), *rest], hops, walk)
            if found is not None:
                return found
        # `from . import mod` / `from pkg import mod`: the attribute is a submodule.
        submodule = f"{module}.{attribute}" if module else attribute
        return self._resolve_module(file, level, submodule, rest, hops, walk)

    def _resolve_module(
        self, file: _File, level: int, module: str, names: list[str], hops: int, walk: _Walk
    ) -> FoundFunction | None:
        if not names:  # the name is a module, not a function
            return None
        for target in self._module_files(file, level, module):
            found = self._resolve(target, names, hops, walk)
            if found is not None:
                return found
        return None

    def _module_files(self, file: _File, level: int, module: str) -> list[_File]:
        """The files of the module `file` imports as `<level dots><module>`, best first.

        Relative imports count from `file`'s own package; absolute ones look beside `file`'s
        source root first, then from the repository root, then under any source root.
        """
        parts = tuple(_normalize(p) for p in module.split(".")) if module else ()
        if level:
            package = file.module if _is_package(file) else file.module[:-1]
            if level - 1 > len(package):
                return []
            target = package[: len(package) - (level - 1)] + parts
            return sorted(self._by_module.get(target, ()), key=lambda f: f.rank) if target else []
        if not parts:
            return []
        found: list[_File] = []
        if file.root_module is not None:
            root = file.module[: len(file.module) - len(file.root_module)]
            found.extend(sorted(self._by_module.get(root + parts, ()), key=lambda f: f.rank))
        found.extend(sorted(self._by_module.get(parts, ()), key=lambda f: f.rank))
        found.extend(sorted(self._by_root_module.get(parts, ()), key=lambda f: f.rank))
        return _unique(found)

    def _found(self, file: _File, qualname: str, parsed: _Parsed, spans: list[_Span]) -> FoundFunction:
        # It parsed from these bytes, so they decode.
        text = decode_source(self._data[file.path])
        pieces = [text[spans[0].start : spans[0].end]]
        for before, span in itertools.pairwise(spans):
            gap = text[before.end : span.start]
            # Definitions apart only by blank lines and comments (a getter and its setter,
            # overloads) keep the original text between them; anything else is left out.
            pieces.append(gap if _only_blank_or_comments(gap) else "\n\n")
            pieces.append(text[span.start : span.end])
        return FoundFunction(
            qualified_name=".".join([*file.display_module, qualname]),
            path=file.path,
            source="".join(pieces),
            start_line=spans[0].start_line,
            end_line=max(s.end_line for s in spans),
            definitions=len(spans),
        )

    def _candidates(self, parts: list[str], tier: int) -> list[_Candidate]:
        """Files of `tier` that may hold the name, best first; the exact tiers never need the name
        index."""
        found: list[_Candidate] = []
        if tier != _SUFFIX:
            table = self._tier_table(tier)
            for split in range(len(parts) - 1, 0, -1):
                found.extend(_Candidate(tier, f, split) for f in table.get(tuple(parts[:split]), ()))
            found.sort(key=lambda c: c.key)
            return found
        # Suffixes: the module part is a tail of a module name, or empty (`Class.method`, `func`).
        holders = self._holders(parts[-1])
        for split in range(len(parts) - 1, 0, -1):
            found.extend(
                _Candidate(_SUFFIX, f, split)
                for f in self._by_suffix.get(tuple(parts[:split]), ())
                if f.path in holders
            )
        # Without a module part, every part is a def or class name in the same file.
        paths = holders
        for part in parts[:-1]:
            paths = self._holders(part, within=paths)
        found.extend(_Candidate(_SUFFIX, self._files[path], 0) for path in paths)
        found.sort(key=lambda c: c.key)
        return found

    def _parse(self, path: str) -> _Parsed | _Unparsable:
        parsed = self._parsed.get(path)
        if parsed is None:
            parsed = _parse(self._data[path], path)
            self._parsed[path] = parsed
        return parsed

    def _holders(self, name: str, within: Iterable[str] | None = None) -> frozenset[str]:
        """The files (of `within`, or all) whose text has `def name` or `class name`.

        An over-inclusive filter: parsing decides whether a definition is real. The first few
        names are each found by one scan of the bytes (tens of ms on the stdlib, so a first lookup
        stays fast); after that the index of every name is built once (about 100 ms).
        """
        if within is None and (cached := self._holder_cache.get(name)) is not None:
            return cached
        scan = within is not None or len(self._holder_cache) < _SCANS_BEFORE_INDEX
        if self._names is not None or not name.isascii() or not scan:
            found = frozenset(self._name_index().get(name, ()))
            if within is not None:
                found = found.intersection(within)
        else:
            needle = name.encode("ascii")
            tail = re.escape(needle) + rb"(?![\w\x80-\xff])"
            # Two patterns, each with a literal prefix the regex engine can skip ahead to.
            patterns = (re.compile(rb"def[ \t]+" + tail), re.compile(rb"class[ \t]+" + tail))
            found = frozenset(
                path
                for path in (self._files if within is None else within)
                if needle in (data := self._data[path]) and any(p.search(data) for p in patterns)
            )
        if within is None:
            self._holder_cache[name] = found
        return found

    def _name_index(self) -> dict[str, set[str]]:
        """Every `def`/`class` name that appears in the text -> the files it appears in."""
        names = self._names
        if names is not None:
            return names
        with self._lock:
            if self._names is not None:
                return self._names
            names = {}
            for path in self._files:
                for name in self._scan_names(path):
                    holders = names.get(name)
                    if holders is None:
                        names[name] = {path}
                    else:
                        holders.add(path)
            self._names = names
        return names

    def _scan_names(self, path: str) -> set[str]:
        data = self._data[path]
        raw = set(_DEF_NAMES.findall(data))
        raw.update(_CLASS_NAMES.findall(data))
        if all(item.isascii() for item in raw):
            return {item.decode("ascii") for item in raw}
        # Non-ASCII names: read them from the decoded text, whatever the file's encoding.
        try:
            text = decode_source(data)
        except SourceDecodeError:
            text = data.decode("utf-8", errors="replace")
        return {_normalize(name) for name in _TEXT_NAMES.findall(text)}

    def _reexported_names(self, file: _File, parsed: _Parsed, wanted: str) -> dict[str, str]:
        """Public names `file` imports or lists in `__all__` that look like `wanted`, and the members
        of each (`httpx.Client`, `httpx.Client.send`), each -> the name where it is defined: only
        the few closest are followed."""
        listed = set(parsed.bindings).union(parsed.exports or ())
        # And what its star imports bring (the walk that failed has parsed those modules already).
        for level, module in parsed.stars:
            for target in self._module_files(file, level, module)[:1]:
                table = self._parse(target.path)
                if isinstance(table, _Parsed):
                    listed.update(n for n in (*table.definitions, *table.bindings) if _star_exports(table, n))
        public = sorted(
            name for name in listed if not name.startswith("_") and name not in parsed.definitions
        )
        names: dict[str, str] = {}
        for name in difflib.get_close_matches(wanted, public, n=_SUGGEST_REEXPORTS, cutoff=0.6):
            found = self._resolve(file, [name], 0, _Walk())
            if found is None:
                continue
            shown = ".".join([*file.display_module, name])
            names[shown] = found.qualified_name
            defining = self._parsed.get(found.path)
            if isinstance(defining, _Parsed):
                inner = found.qualified_name.split(".")[len(self._files[found.path].display_module) :]
                prefix = ".".join(inner) + "."
                for q in defining.definitions:
                    if q.startswith(prefix):
                        names[shown + "." + q[len(prefix) :]] = found.qualified_name + "." + q[len(prefix) :]
        return names

    def _suggest(self, parts: list[str]) -> list[str]:
        """Up to five dotted names that exist and look most like the one asked for.

        Parses at most a few files: the modules the name's prefix points to (a typo in the
        function's name), and the files defining names close to its last part whose module looks
        most like the one asked for (a typo in the module part, or both).
        """
        wanted = ".".join(parts)
        pool: set[str] = set()
        prefix_files: list[tuple[_File, int]] = []
        for split in range(len(parts), 0, -1):
            module = tuple(parts[:split])
            for table in (self._by_module, self._by_root_module, self._by_suffix):
                prefix_files.extend((f, split) for f in sorted(table.get(module, ()), key=lambda f: f.rank))
        seen: set[str] = set()
        # Where a re-exported public name is defined -> the public name.
        public_names: dict[str, str] = {}
        for file, split in prefix_files:
            if file.path in seen or len(seen) == _SUGGEST_FILES:
                continue
            seen.add(file.path)
            parsed = self._parse(file.path)
            if isinstance(parsed, _Parsed):
                pool.update(".".join([*file.display_module, q]) for q in parsed.definitions)
                if split < len(parts):
                    reexported = self._reexported_names(file, parsed, parts[split])
                    pool.update(reexported)
                    public_names.update((defining, public) for public, defining in reexported.items())

        names = self._name_index()
        last = parts[-1]
        # A ratio of at least 0.75 needs lengths within 0.6x to 1.67x of each other: checking that
        # first spares difflib most of the vocabulary.
        shortest, longest = 0.6 * len(last), len(last) / 0.6
        vocabulary = [n for n in names if shortest <= len(n) <= longest]
        close = difflib.get_close_matches(last, vocabulary, n=6, cutoff=0.75)
        lowered = last.lower()
        close += [n for n in vocabulary if len(n) == len(last) and n.lower() == lowered and n not in close]
        wanted_module = ".".join(parts[:-1])
        holders: dict[str, list[str]] = {}
        for name in close:
            for path in names[name]:
                holders.setdefault(path, []).append(name)

        def likeness(path: str) -> tuple[float, tuple[int, int, int, int, str]]:
            file = self._files[path]
            module = ".".join(file.display_module)
            return (-difflib.SequenceMatcher(None, wanted_module, module).ratio(), file.rank)

        for path in sorted(holders, key=likeness)[: 2 * _SUGGEST_FILES]:
            file = self._files[path]
            parsed = self._parse(path)
            if not isinstance(parsed, _Parsed):
                continue
            for name in holders[path]:
                pool.update(
                    ".".join([*file.display_module, q])
                    for q in parsed.definitions
                    if q == name or q.endswith("." + name)
                )
        pool.discard(wanted)
        ranked = _closest(wanted, len(parts), pool)
        # A public name stands for its definition: not both among the suggestions.
        listed = set(ranked)
        return [name for name in ranked if public_names.get(name) not in listed][:MAX_SUGGESTIONS]


@dataclass(slots=True)
class _Walk:
    """One walk through imports: what it tried, and a broken file it was led to."""

    seen: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    # The file whose import was followed last: named in the error when the next file is broken.
    via: str | None = None
    broken: tuple[str, str, str | None] | None = None


def _is_package(file: _File) -> bool:
    return file.path.endswith(("/__init__.py", "/__init__.pyi")) or file.path in {
        "__init__.py",
        "__init__.pyi",
    }


def _star_exports(table: _Parsed, name: str) -> bool:
    """Whether `from module import *` binds `name`: listed in a literal `__all__`, or, with no
    `__all__`, public and defined or imported at the module's top level."""
    if table.exports is not None:
        return name in table.exports
    return not name.startswith("_") and (name in table.definitions or name in table.bindings)


def _unique(files: list[_File]) -> list[_File]:
    seen: set[str] = set()
    unique = []
    for file in files:
        if file.path not in seen:
            seen.add(file.path)
            unique.append(file)
    return unique


def _only_blank_or_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in LINE_END.split(text))


def _qualname_ending(parsed: _Parsed, tail: str) -> str | None:
    """The definition whose dotted name is `tail` or ends with it: the shallowest, then the first."""
    if tail in parsed.definitions:
        return tail
    dotted = "." + tail
    matches = [q for q in parsed.definitions if q.endswith(dotted)]
    if not matches:
        return None
    return min(matches, key=lambda q: (q.count("."), parsed.definitions[q][0].start_line))


def _closest(wanted: str, depth: int, pool: Iterable[str]) -> list[str]:
    lowered = wanted.lower()
    scored: list[tuple[float, int, str]] = []
    for candidate in pool:
        tail = ".".join(candidate.split(".")[-depth:]).lower()
        score = max(
            difflib.SequenceMatcher(None, lowered, candidate.lower()).ratio(),
            difflib.SequenceMatcher(None, lowered, tail).ratio(),
        )
        if score >= 0.6:
            scored.append((-score, len(candidate), candidate))
    scored.sort()
    return [candidate for _, _, candidate in scored]
