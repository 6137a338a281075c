"""Which definition a name means: the tiers of candidate files, then re-exports through imports.

When no file of a tier defines the name where it says, the imports of that tier's modules the
name's prefix names are followed (`httpx.Client.send` through `from ._client import Client` in
`httpx/__init__.py`, star imports, aliases, chains of them, at most `MAX_REEXPORT_HOPS` deep)
before the next tier is tried, and the answer names where the definition really is. The order:
direct exact, re-export by an exact module, direct source-root, re-export by a source-root
module, direct suffix, re-export by a suffix module; so `pkg.run` re-exported by
`pkg/__init__.py` beats a `vendor/pkg.py` that defines `run`.

Building a `SnapshotIndex` only splits paths; a file is decoded and parsed the first time a
lookup needs it, once, and only the positions of its definitions are kept. What needs the whole
text of the snapshot is asked of a `Search` (analyzer.locate.text).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from analyzer.locate.errors import NameNotFound, UnparsableSource
from analyzer.locate.files import (
    EXACT,
    SOURCE_ROOT,
    SUFFIX,
    Candidate,
    SourceFile,
    describe_file,
    is_package,
    repo_folder_name,
    unique,
)
from analyzer.locate.names import normalize, parse_name
from analyzer.locate.tables import (
    ALIAS,
    FROM,
    IMPORT,
    Binding,
    Parsed,
    ParsedFile,
    Span,
    Unparsable,
    parse_file,
    star_exports,
)
from analyzer.locate.text import LocalSearch, Search
from analyzer.sources import LINE_END, decode_source

# How many imports a name may go through (a re-export of a re-export...) before the walk gives up.
MAX_REEXPORT_HOPS = 10
# How many (file, name) steps one walk through imports may take in all: star imports fan out.
_MAX_REEXPORT_STEPS = 64


@dataclass(frozen=True, slots=True)
class FoundFunction:
    """A function (or class) found by name, with its exact source text.

    `source` is the original text from the first decorator to the end of the body's last line
    (a comment there is part of it), as `ast.get_source_segment` gives it plus the decorator
    lines and the rest of the last line. Its first line starts at the `@`/`def`/`class`; `indent`
    is the whitespace before it in the file, which the later lines keep. When the name has several
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
    indent: str = ""


@dataclass(frozen=True, slots=True)
class Reached:
    """Where a name used in a module leads inside the snapshot (`SnapshotIndex.reach`).

    `definition` is the def or class the name means (None when it means none of the snapshot),
    and `qualname` its dotted name inside its file ("" without one). `unbound` lists, in the order
    reached, (path, name) of the modules the name led to that neither define nor import its last
    part (or bind it only as a plain alias, `NAME = OTHER`): where an assignment, a constant, may
    bind it.
    """

    definition: FoundFunction | None = None
    qualname: str = ""
    unbound: tuple[tuple[str, str], ...] = ()


class SnapshotIndex:
    """The files of one commit, ready to answer which function a name means.

    `files` maps paths from the repository root to raw bytes (`Snapshot.files`); `repo` is the
    repository's name (`owner/name` or `name`), used for the "folder named like the repository"
    source root. Building is cheap; files are parsed on first use and cached, by `parse`
    (`parse_file` in this process by default; a server passes one that parses in a worker
    process, within a budget). What needs the whole snapshot's text (which files may define a
    name, a 404's close names) is asked of `search` (`LocalSearch`, in this process, by default;
    a server passes one that works in a worker process). Safe to share between threads (the
    caches only ever gain entries).
    """

    def __init__(
        self,
        files: Mapping[str, bytes],
        repo: str = "",
        parse: Callable[[bytes, str], ParsedFile] | None = None,
        search: Search | None = None,
    ) -> None:
        self._data = files
        self._parse_file = parse or parse_file
        self._search = search or LocalSearch(self, files)
        self._parsed: dict[str, Parsed | Unparsable] = {}
        self._holder_cache: dict[str, frozenset[str]] = {}
        self._by_module: dict[tuple[str, ...], list[SourceFile]] = {}
        self._by_root_module: dict[tuple[str, ...], list[SourceFile]] = {}
        self._by_suffix: dict[tuple[str, ...], list[SourceFile]] = {}
        self._files: dict[str, SourceFile] = {}
        repo_folder = repo_folder_name(repo)
        packages = {
            normalize(path.split("/", 1)[0])
            for path in files
            if path.count("/") == 1 and path.endswith(("/__init__.py", "/__init__.pyi"))
        }
        for path in files:
            described = describe_file(path, repo_folder, packages)
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

    @property
    def search(self) -> Search:
        """What answers the questions about the whole snapshot's text."""
        return self._search

    def python_paths(self) -> Iterable[str]:
        """The paths of the Python files the index holds."""
        return self._files.keys()

    def source_files(self) -> list[SourceFile]:
        """The Python files (`.py` and `.pyi`) the index holds, with their module names, in no set order."""
        return list(self._files.values())

    def definitions(self, path: str) -> Mapping[str, list[Span]]:
        """The definitions of the file at `path`: dotted name inside the module -> spans in source order.

        Parses the file on first use (cached, as for lookups). Empty for a file that does not
        parse. Raises KeyError for a path that is not one of `source_files()`.
        """
        parsed = self._parse(self._files[path].path)
        return parsed.definitions if isinstance(parsed, Parsed) else {}

    def table(self, path: str) -> ParsedFile:
        """What parsing the file at `path` left: its definitions, or Unparsable with the reason
        (a syntax error, over the parse budget, not text). Parses it on first use, as a lookup
        does. Raises KeyError for a path that is not one of `source_files()`."""
        return self._parse(self._files[path].path)

    def source_file(self, path: str) -> SourceFile:
        """The file at `path` with its module names; KeyError for a path not in `source_files()`."""
        return self._files[path]

    def function(self, path: str, qualname: str) -> FoundFunction:
        """The definitions of `qualname` in the file at `path` (parsed already, see `table`), as
        `find` gives a name that leads there. Raises KeyError when the file does not define it."""
        file = self._files[path]
        parsed = self._parse(file.path)
        if not isinstance(parsed, Parsed) or qualname not in parsed.definitions:
            raise KeyError(f"{path} does not define {qualname}")
        return self._found(file, qualname, parsed, parsed.definitions[qualname])

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
                if not isinstance(table, Parsed | Unparsable):
                    raise TypeError(f"not a table from parse_files: {type(table).__name__} for {path}")
                self._parsed[path] = table
                adopted += 1
        return adopted

    def find(self, name: str) -> FoundFunction:
        """The function (or class) `name` means, with its exact source.

        Raises MalformedName for an empty or malformed name, NameNotFound (with up to
        five close names that exist) when nothing matches, and UnparsableSource when the file
        the name points to cannot be parsed.
        """
        parts = parse_name(name)
        shown = name.strip()
        # One walk through imports for the whole lookup: a (file, name) tried in a better tier is
        # not tried again.
        walk = Walk()
        broken: tuple[str, str] | None = None
        for tier in (EXACT, SOURCE_ROOT, SUFFIX):
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
            if tier < SUFFIX and walk.broken is not None:
                # The module the name spells out imports it from a file that does not parse:
                # that is the file meant, as for a direct match in this tier.
                raise UnparsableSource(shown, *walk.broken)
        if broken is not None:
            raise UnparsableSource(shown, *broken)
        if walk.broken is not None:
            raise UnparsableSource(shown, *walk.broken)
        raise NameNotFound(shown, self._search.suggest(parts))

    def reach(self, path: str, name: str, *, imported: tuple[int, str] | None = None) -> Reached:
        """What the dotted `name` (`helper`, `models.load`, `Cart.total`) means at the top level of
        the module of the file at `path`: defined there, or reached through its imports, aliases and
        star imports as `find` follows them (at most `MAX_REEXPORT_HOPS` deep), never outside the
        snapshot. With `imported` = (level, module), the name's first part is bound as by
        `from <level dots><module> import <first part>` (an import inside a function).

        Unlike `find`, no tiers, no text search and no close names: a name that leads nowhere (a
        third-party or builtin name) costs a few lookups in the tables. A file that does not parse,
        or that the parser refuses, leads nowhere. Raises KeyError for a path that is not one of
        `source_files()`.
        """
        file = self._files[path]
        names = [normalize(part) for part in name.split(".")]
        walk = Walk(reaching=True)
        if imported is None:
            found = self._resolve(file, names, 0, walk)
        else:
            level, module = imported
            found = self._through(file, (FROM, level, module, names[0]), names[1:], 1, walk)
        unbound = tuple(walk.unbound)
        if found is None:
            return Reached(unbound=unbound)
        module_parts = len(self._files[found.path].display_module)
        qualname = ".".join(found.qualified_name.split(".")[module_parts:])
        return Reached(definition=found, qualname=qualname, unbound=unbound)

    def text(self, path: str) -> str | None:
        """The text of the Python file at `path`; None when it does not parse (or the parser
        refuses it: over its budget, not text). Parses it on first use, as a lookup does. Raises
        KeyError for a path that is not one of `source_files()`.
        """
        parsed = self._parse(self._files[path].path)
        if isinstance(parsed, Unparsable):
            return None
        return decode_source(self._data[path])

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
                if candidate.tier == SUFFIX:
                    continue
                # The name spells out this module: unless its bytes are not text at all (then
                # they say nothing of what it defines, and it is that file's 422), it is not here.
                parsed = self._parse(path)
                if isinstance(parsed, Unparsable) and parsed.undecodable:
                    raise UnparsableSource(shown, path, parsed.error)
                continue
            parsed = self._parse(path)
            if isinstance(parsed, Unparsable):
                # Blame a broken file only if its text looks like it defines the name (or is not
                # text at all). When the name spells out its module, that file is the one meant:
                # say it does not parse. A suffix names no file, so a match in a file that parses
                # wins over it.
                if (parsed.undecodable and candidate.tier < SUFFIX) or self._holders(last, within=(path,)):
                    if candidate.tier < SUFFIX:
                        raise UnparsableSource(shown, path, parsed.error)
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

    def _implementation(self, stub: Candidate, parts: list[str]) -> FoundFunction | None:
        """The definition the `.py` beside a stub reaches through its imports, if it does."""
        module = stub.file.path.removesuffix("i")
        source = self._files.get(module)
        if source is None or not self._data[module]:
            return None
        return self._resolve(source, parts[stub.module_parts :], 0, Walk())

    def _follow_imports(self, parts: list[str], tier: int, walk: Walk) -> FoundFunction | None:
        """The definition the name reaches through re-exports, starting from the modules of `tier`
        its prefix names (best ranked first, as for direct matches), or None."""
        table = self._tier_table(tier)
        starts = [
            Candidate(tier, f, split)
            for split in range(len(parts) - 1, 0, -1)
            for f in table.get(tuple(parts[:split]), ())
        ]
        starts.sort(key=lambda c: c.key)
        for start in starts:
            found = self._resolve(start.file, parts[start.module_parts :], 0, walk)
            if found is not None:
                return found
        return None

    def _tier_table(self, tier: int) -> dict[tuple[str, ...], list[SourceFile]]:
        if tier == EXACT:
            return self._by_module
        return self._by_root_module if tier == SOURCE_ROOT else self._by_suffix

    def _resolve(
        self, file: SourceFile, names: list[str], hops: int, walk: Walk | None = None
    ) -> FoundFunction | None:
        """`names` (a dotted name inside `file`'s module) defined there or reached from there
        through imports (a new walk when none is given); None if not. Each (file, name) is tried
        once per walk, so cycles end."""
        if walk is None:
            walk = Walk()
        key = (file.path, tuple(names))
        if key in walk.seen or hops > MAX_REEXPORT_HOPS or len(walk.seen) >= _MAX_REEXPORT_STEPS:
            return None
        walk.seen.add(key)
        parsed = self._parse(file.path)
        if isinstance(parsed, Unparsable):
            # Reached through an import of the name: this is the file meant, if it looks like it
            # defines the name, or is not text at all (then nothing can be said of what it defines).
            if (
                hops > 0
                and not walk.reaching
                and walk.broken is None
                and (parsed.undecodable or self._holders(names[-1], within=(file.path,)))
            ):
                walk.broken = (file.path, parsed.error, walk.via)
            return None
        qualname = ".".join(names)
        spans = parsed.definitions.get(qualname)
        if spans:
            return self._found(file, qualname, parsed, spans)
        head, rest = names[0], names[1:]
        if (
            not rest
            and head not in parsed.definitions
            and all(b[0] == ALIAS for b in parsed.bindings.get(head, ()))
        ):
            # Neither defined nor imported here: if anything binds it, an assignment does.
            walk.unbound.append((file.path, head))
        # A definition of the head (a class without that method) shadows any import of it.
        if head not in parsed.definitions:
            for binding in parsed.bindings.get(head, ()):
                found = self._through(file, binding, rest, hops + 1, walk)
                if found is not None:
                    return found
            # `pkg.sub.func` where `pkg/__init__.py` names `sub` nowhere: the submodule itself.
            if rest and is_package(file):
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
                if isinstance(table, Parsed) and (
                    star_exports(table, head) or (walk.reaching and _star_may_assign(table, head))
                ):
                    walk.via = file.path
                    found = self._resolve(target, names, hops + 1, walk)
                    if found is not None:
                        return found
        return None

    def _through(
        self, file: SourceFile, binding: Binding, rest: list[str], hops: int, walk: Walk
    ) -> FoundFunction | None:
        """Where one import (or alias) of `file` leads `rest`, the names after the bound one."""
        kind, level, module, attribute = binding
        walk.via = file.path
        if kind == ALIAS:
            return self._resolve(file, [*attribute.split("."), *rest], hops, walk)
        if kind == IMPORT:
            return self._resolve_module(file, 0, module, rest, hops, walk)
        for target in self._module_files(file, level, module):
            found = self._resolve(target, [normalize(attribute), *rest], hops, walk)
            if found is not None:
                return found
        # `from . import mod` / `from pkg import mod`: the attribute is a submodule.
        submodule = f"{module}.{attribute}" if module else attribute
        return self._resolve_module(file, level, submodule, rest, hops, walk)

    def _resolve_module(
        self, file: SourceFile, level: int, module: str, names: list[str], hops: int, walk: Walk
    ) -> FoundFunction | None:
        if not names:  # the name is a module, not a function
            return None
        for target in self._module_files(file, level, module):
            found = self._resolve(target, names, hops, walk)
            if found is not None:
                return found
        return None

    def _module_files(self, file: SourceFile, level: int, module: str) -> list[SourceFile]:
        """The files of the module `file` imports as `<level dots><module>`, best first.

        Relative imports count from `file`'s own package; absolute ones look beside `file`'s
        source root first, then from the repository root, then under any source root.
        """
        parts = tuple(normalize(p) for p in module.split(".")) if module else ()
        if level:
            package = file.module if is_package(file) else file.module[:-1]
            if level - 1 > len(package):
                return []
            target = package[: len(package) - (level - 1)] + parts
            return sorted(self._by_module.get(target, ()), key=lambda f: f.rank) if target else []
        if not parts:
            return []
        found: list[SourceFile] = []
        if file.root_module is not None:
            root = file.module[: len(file.module) - len(file.root_module)]
            found.extend(sorted(self._by_module.get(root + parts, ()), key=lambda f: f.rank))
        found.extend(sorted(self._by_module.get(parts, ()), key=lambda f: f.rank))
        found.extend(sorted(self._by_root_module.get(parts, ()), key=lambda f: f.rank))
        return unique(found)

    def _found(self, file: SourceFile, qualname: str, parsed: Parsed, spans: list[Span]) -> FoundFunction:
        # It parsed from these bytes, so they decode.
        text = decode_source(self._data[file.path])
        pieces = [text[spans[0].start : spans[0].end]]
        for before, span in itertools.pairwise(spans):
            gap = text[before.end : span.start]
            # Definitions apart only by blank lines and comments (a getter and its setter,
            # overloads) keep the original text between them; anything else is left out.
            pieces.append(gap if _only_blank_or_comments(gap) else "\n\n")
            pieces.append(text[span.start : span.end])
        start = spans[0].start
        line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
        return FoundFunction(
            qualified_name=".".join([*file.display_module, qualname]),
            path=file.path,
            source="".join(pieces),
            start_line=spans[0].start_line,
            end_line=max(s.end_line for s in spans),
            definitions=len(spans),
            indent=text[line_start:start],
        )

    def _candidates(self, parts: list[str], tier: int) -> list[Candidate]:
        """Files of `tier` that may hold the name, best first; the exact tiers never need the name
        index."""
        found: list[Candidate] = []
        if tier != SUFFIX:
            table = self._tier_table(tier)
            for split in range(len(parts) - 1, 0, -1):
                found.extend(Candidate(tier, f, split) for f in table.get(tuple(parts[:split]), ()))
            found.sort(key=lambda c: c.key)
            return found
        # Suffixes: the module part is a tail of a module name, or empty (`Class.method`, `func`).
        holders = self._holders(parts[-1])
        for split in range(len(parts) - 1, 0, -1):
            found.extend(
                Candidate(SUFFIX, f, split)
                for f in self._by_suffix.get(tuple(parts[:split]), ())
                if f.path in holders
            )
        # Without a module part, every part is a def or class name in the same file.
        paths = holders
        for part in parts[:-1]:
            paths = self._holders(part, within=paths)
        found.extend(Candidate(SUFFIX, self._files[path], 0) for path in paths)
        found.sort(key=lambda c: c.key)
        return found

    def _parse(self, path: str) -> Parsed | Unparsable:
        parsed = self._parsed.get(path)
        if parsed is None:
            parsed = self._parse_file(self._data[path], path)
            self._parsed[path] = parsed
        return parsed

    def _holders(self, name: str, within: Iterable[str] | None = None) -> frozenset[str]:
        """The files (of `within`, or all) whose text has `def name` or `class name`; answers for
        all files are kept (a few names per lookup, and the same ones again)."""
        if within is not None:
            return self._search.holders(name, tuple(within))
        found = self._holder_cache.get(name)
        if found is None:
            found = self._search.holders(name, None)
            self._holder_cache[name] = found
        return found


@dataclass(slots=True)
class Walk:
    """One walk through imports: what it tried, and a broken file it was led to."""

    seen: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    # The file whose import was followed last: named in the error when the next file is broken.
    via: str | None = None
    broken: tuple[str, str, str | None] | None = None
    # A walk of `reach`: a broken file is not looked into to be blamed (a text search; `find` says
    # why it failed, `reach` does not), and star imports are followed for what they may assign too.
    reaching: bool = False
    # (path, name) of the modules reached that neither define nor import the name: see `Reached`.
    unbound: list[tuple[str, str]] = field(default_factory=list)


def _star_may_assign(table: Parsed, name: str) -> bool:
    """Whether `from module import *` may bind `name` by an assignment the tables do not record."""
    return name in table.exports if table.exports is not None else not name.startswith("_")


def _only_blank_or_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in LINE_END.split(text))


def _qualname_ending(parsed: Parsed, tail: str) -> str | None:
    """The definition whose dotted name is `tail` or ends with it: the shallowest, then the first."""
    if tail in parsed.definitions:
        return tail
    dotted = "." + tail
    matches = [q for q in parsed.definitions if q.endswith(dotted)]
    if not matches:
        return None
    return min(matches, key=lambda q: (q.count("."), parsed.definitions[q][0].start_line))
