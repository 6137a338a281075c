"""One snapshot's function names in listing order, a page at a time, each page within a deadline.

The order is stable (modules in dotted order, then path, then line), so a cursor `file:entry`
(the index of a file in that order, and of a definition in that file's own order) stays valid for
a job. A page costs only what it shows: a file's definitions are sorted once it is parsed (cheap
even for 75k of them), and the short name of a definition (the shortest suffix the resolver maps
back to it, one `SnapshotIndex.find` or a few each) is worked out only for the entries a page
shows, and kept. The deadline is checked before every file and after every definition, not only
between files, so a page ends within its budget plus one step: parsing one file (which the parse
budget bounds) or naming one definition. Every page makes at least one step, so a walk with a
budget spent at once still reaches the end.

Runs in the function listing's worker process (analyzer.listing_worker); the tests also run it
in their own.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import msgspec

from analyzer.errors import BadInput
from analyzer.locate import MAX_NAME_CHARS, LookupFailed, SnapshotIndex
from analyzer.locate.files import SourceFile

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR = re.compile(r"(\d{1,9}):(\d{1,9})")


class FunctionName(msgspec.Struct, kw_only=True, frozen=True):
    # The shortest dotted name that `/analyze/function` resolves to this definition.
    name: str
    # Its module's importable dotted name (from the source root, if any) and the qualified name.
    full_name: str
    path: str
    line: int


class InvalidListing(BadInput):
    """A limit, cursor or filter no listing can take."""


class TooManyNamesError(Exception):
    """The names of the files listed so far would pass the listing's bound on names."""

    def __init__(self, path: str, names: int, max_names: int) -> None:
        super().__init__(f"{path} takes the listing to {names} names, over {max_names}")
        self.path = path
        self.names = names
        self.max_names = max_names


@dataclass(frozen=True, slots=True)
class Query:
    prefix: str
    contains: str
    limit: int
    file_position: int
    entry_position: int

    @classmethod
    def checked(cls, prefix: str, contains: str, limit: int, cursor: str) -> Query:
        """The query, or InvalidListing (422) that says which parameter is wrong."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidListing(f"limit must be 1 to {MAX_LIMIT}, got {limit}")
        for label, value in (("prefix", prefix), ("contains", contains)):
            if len(value) > MAX_NAME_CHARS or not value.isprintable():
                raise InvalidListing(f"{label} must be at most {MAX_NAME_CHARS} printable characters")
        position = (0, 0)
        if cursor:
            match = _CURSOR.fullmatch(cursor)
            if match is None:
                raise InvalidListing(f"cursor {cursor[:40]!r} is not one a page gave")
            position = (int(match[1]), int(match[2]))
        return cls(prefix.strip(), contains.strip().lower(), limit, *position)

    @property
    def cursor(self) -> str:
        """The cursor of this query's own position: where a page that got nowhere goes on from."""
        return f"{self.file_position}:{self.entry_position}"


class _Entry:
    """One definition of a file; its short name once a page has shown it."""

    __slots__ = ("full_name", "line", "name", "qualname")

    def __init__(self, line: int, full_name: str, qualname: str) -> None:
        self.line = line
        self.full_name = full_name
        self.qualname = qualname
        self.name: str | None = None


class Listing:
    """One snapshot's files in listing order, and the definitions of the files reached so far.

    Holds at most `max_names` definitions: a page that reaches a file that would take it past
    raises TooManyNamesError (the files before it stay listed). Not safe to share between threads: the
    worker answers one page at a time.
    """

    def __init__(self, index: SnapshotIndex, *, max_names: int = 1_000_000) -> None:
        self.index = index
        self.max_names = max_names
        # Stubs declare what `.py` files implement: the implementation is what gets reviewed.
        files = [f for f in index.source_files() if f.path.endswith(".py")]
        self.files: list[SourceFile] = sorted(files, key=lambda f: (f.display_module, f.path))
        self._entries: dict[str, list[_Entry]] = {}
        self.names = 0

    def page(self, query: Query, deadline: float) -> tuple[list[FunctionName], str | None]:
        """Up to `query.limit` entries from the query's position, and the cursor after them (None
        when the listing is complete). Past `deadline` (`time.monotonic()`), what was found so far
        and the cursor of the next step; at least one step is made. Raises TooManyNamesError when
        the first file it needs would take the listing past `max_names`."""
        found: list[FunctionName] = []
        position, number = query.file_position, query.entry_position
        stepped = False
        while position < len(self.files):
            if stepped and time.monotonic() > deadline:
                return found, f"{position}:{number}"
            file = self.files[position]
            try:
                entries = self._of(file) if self._may_match(file, query) else []
            except TooManyNamesError:
                if not found:
                    raise
                return found, f"{position}:0"  # the names so far; the next page says why it stops
            stepped = True
            while number < len(entries):
                entry = entries[number]
                if entry.full_name.startswith(query.prefix) and query.contains in entry.full_name.lower():
                    if len(found) == query.limit:
                        return found, f"{position}:{number}"
                    found.append(self._named(file, entry))
                number += 1
                if number < len(entries) and time.monotonic() > deadline:
                    return found, f"{position}:{number}"
            position, number = position + 1, 0
        return found, None

    @staticmethod
    def _may_match(file: SourceFile, query: Query) -> bool:
        """Whether a file's names can start with the prefix, judged by its module alone (no parse)."""
        if not query.prefix:
            return True
        module = ".".join(file.display_module)
        return module.startswith(query.prefix) or query.prefix.startswith(module + ".")

    def _of(self, file: SourceFile) -> list[_Entry]:
        """The file's definitions in line order; parses it the first time. Raises TooManyNamesError."""
        known = self._entries.get(file.path)
        if known is not None:
            return known
        definitions = self.index.definitions(file.path)
        if self.names + len(definitions) > self.max_names:
            raise TooManyNamesError(file.path, self.names + len(definitions), self.max_names)
        module = ".".join(file.display_module)
        entries = [
            _Entry(spans[0].start_line, f"{module}.{qualname}" if module else qualname, qualname)
            for qualname, spans in definitions.items()
        ]
        entries.sort(key=lambda e: (e.line, e.full_name))
        self._entries[file.path] = entries
        self.names += len(entries)
        return entries

    def _named(self, file: SourceFile, entry: _Entry) -> FunctionName:
        if entry.name is None:
            module = list(file.display_module)
            entry.name = self._shortest(module, entry.qualname, file, entry.line) or entry.full_name
        return FunctionName(name=entry.name, full_name=entry.full_name, path=file.path, line=entry.line)

    def _shortest(self, module: list[str], qualname: str, file: SourceFile, line: int) -> str | None:
        """The shortest `<module suffix>.<qualname>` the resolver maps to this very definition."""
        whole = [*module, qualname] if module else [qualname]
        tried = [".".join(whole[start:]) for start in range(len(module) - 1, 0, -1)]
        tried.append(".".join(whole))
        tried.append(".".join([*file.module, qualname]))  # from the repository root: the exact tier
        for name in tried:
            try:
                found = self.index.find(name)
            except LookupFailed:
                continue
            if found.path == file.path and found.start_line == line:
                return name
        return None
