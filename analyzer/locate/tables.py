"""What parsing one file leaves: the positions of its definitions and what its imports bind.

Only positions are kept (the text is decoded again from the snapshot's bytes when a definition is
asked for), and every table is picklable, so `parse_files` can run in another process.
"""

from __future__ import annotations

import ast
import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from analyzer.locate.names import normalize
from analyzer.sources import Lines, SourceDecodeError, decode_source


@dataclass(frozen=True, slots=True)
class Span:
    start_line: int
    end_line: int
    # Offsets into the decoded text: the definition is text[start:end].
    start: int
    end: int
    # False for a class: the scan reports functions (and methods), not the classes around them.
    function: bool = True


# A module-level name bound by an import or a plain alias, as (kind, level, module, attribute):
# `from ..a.b import c as d` binds d to ("from", 2, "a.b", "c"); `import a.b as m` binds m to
# ("import", 0, "a.b", ""); `import a.b` binds a to ("import", 0, "a", ""); `d = c.e` binds d to
# ("alias", 0, "", "c.e"), a name of the same module.
Binding = tuple[str, int, str, str]
FROM, IMPORT, ALIAS = "from", "import", "alias"


@dataclass(frozen=True, slots=True)
class Parsed:
    # Dotted name inside the module ("Class.method", "outer.inner") -> definitions in source order.
    # Only positions are kept; the text is decoded again from the snapshot's bytes when needed.
    definitions: dict[str, list[Span]]
    # Module-level names bound by imports (and plain aliases), each binding in source order.
    bindings: dict[str, tuple[Binding, ...]] = field(default_factory=dict)
    # `from <level dots><module> import *`, in source order.
    stars: tuple[tuple[int, str], ...] = ()
    # The names a literal `__all__` lists (`=`, `+=`); None when the module assigns no `__all__`.
    exports: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Unparsable:
    error: str
    # The bytes are not text at all (unknown codec, a codec that is not a text encoding, bad bytes):
    # nothing can be said of what the file defines, not even from its bytes.
    undecodable: bool = False


# What parsing one file leaves: the positions of its definitions, or why it does not parse.
# Opaque outside this package; picklable, so `parse_files` can run in another process.
ParsedFile = Parsed | Unparsable


def _collect(body: Iterable[ast.stmt], prefix: str, out: dict[str, list[Span]], lines: Lines) -> None:
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


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: Lines) -> Span:
    end_line = node.end_lineno if node.end_lineno is not None else node.lineno
    # Whole lines: what follows the body on its last line (`raise X()  # pragma: no cover`) is
    # part of what the author wrote there.
    last = lines.line(end_line)
    end = lines.starts[end_line - 1] + len(last.rstrip("\r\n"))
    function = not isinstance(node, ast.ClassDef)
    if not node.decorator_list:
        return Span(node.lineno, end_line, lines.offset(node.lineno, node.col_offset), end, function)
    # A decorator statement starts its line, so its `@` is the line's first character after the
    # indentation; the expression after it may start later (`@ name`, `@\` + newline).
    line = node.decorator_list[0].lineno
    while line > 1 and not lines.line(line).lstrip(" \t\f").startswith("@"):
        line -= 1
    text = lines.line(line)
    start = lines.starts[line - 1] + len(text) - len(text.lstrip(" \t\f"))
    return Span(line, end_line, start, end, function)


def parse_file(data: bytes, path: str) -> ParsedFile:
    """The table of one file's bytes; Unparsable, with the reason, when they do not decode or parse."""
    try:
        text = decode_source(data)
    except SourceDecodeError as error:
        return Unparsable(str(error), undecodable=True)
    # A big module's tree is hundreds of thousands of objects, freed by reference counting as
    # soon as its definitions are read (an AST has no cycles).
    with collector_paused():
        return _definitions(text, path)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that makes hundreds of thousands of objects
    without cycles (a parse, an index of names). Left on, it would run hundreds of times, and on
    a large heap its full collections hold the GIL for most of a second each (the server's event
    loop with it), costing more than the block itself. Only switched back on if it was on."""
    collector_was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collector_was_on:
            gc.enable()


def _definitions(text: str, path: str) -> Parsed | Unparsable:
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as error:
        where = f"line {error.lineno}: " if error.lineno else ""
        return Unparsable(f"{where}{error.msg}")
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes, absurd nesting
        return Unparsable(str(error) or type(error).__name__)
    definitions: dict[str, list[Span]] = {}
    _collect(tree.body, "", definitions, Lines(text))
    for spans in definitions.values():
        spans.sort(key=lambda s: s.start)
    imports = _Imports()
    imports.collect(tree.body)
    return Parsed(
        definitions=definitions,
        bindings={name: tuple(found) for name, found in imports.bindings.items()},
        stars=tuple(imports.stars),
        exports=None if imports.exports is None else frozenset(imports.exports),
    )


class _Imports:
    """The module-level imports, plain aliases and `__all__` of a module: what re-exports it."""

    def __init__(self) -> None:
        self.bindings: dict[str, list[Binding]] = {}
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
                        self._bind(alias.asname or alias.name, (FROM, statement.level, module, alias.name))
            elif isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname:
                        self._bind(alias.asname, (IMPORT, 0, alias.name, ""))
                    else:
                        first = alias.name.split(".", 1)[0]
                        self._bind(first, (IMPORT, 0, first, ""))
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

    def _bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(normalize(name), []).append(binding)

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
        target = dotted(statement.value)
        if target is not None:
            for name in names:
                self._bind(name, (ALIAS, 0, "", target))


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


def dotted(node: ast.expr) -> str | None:
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
    return {path: parse_file(data, path) for path, data in files.items() if path.endswith((".py", ".pyi"))}


def star_exports(table: Parsed, name: str) -> bool:
    """Whether `from module import *` binds `name`: listed in a literal `__all__`, or, with no
    `__all__`, public and defined or imported at the module's top level."""
    if table.exports is not None:
        return name in table.exports
    return not name.startswith("_") and (name in table.definitions or name in table.bindings)
