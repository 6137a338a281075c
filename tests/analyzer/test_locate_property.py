"""Property: in real codebases, every dotted name of a function or class finds exactly what `ast` gives.

And every public name a package exports through its `__init__` (`pkg.Name`, `pkg.Name.method`)
finds what its defining module's path finds, the defining module being what Python itself says
(`obj.__module__`, `obj.__qualname__` after importing the package).

The codebases are installed packages of different styles (attrs' decorators, click's big modules,
litestar's overloads and properties, PyYAML's and dateutil's older code, msgspec's stubs beside its
sources), read from site-packages as a snapshot's files dict. The expected text comes from
`ast.get_source_segment` on the file, widened to the first decorator's line and to the end of the
last line (a trailing comment there belongs to the definition); a dotted name
defined several times in one file expects all definitions in source order.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
import sysconfig
import tokenize
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from analyzer.locate import NameNotFound, SnapshotIndex

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
STDLIB = Path(sysconfig.get_paths()["stdlib"])
DefNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True)
class Codebase:
    package: str
    # Where the package folder sits in the repository ("" at the root, "src" for a src layout).
    root: str = ""


CODEBASES = [
    Codebase("attr"),
    Codebase("click"),
    Codebase("dateutil"),
    Codebase("httpx"),
    Codebase("litestar"),
    Codebase("msgspec", root="src"),
    Codebase("yaml", root="lib"),
]


def stdlib_files() -> dict[str, bytes]:
    """The standard library laid out as CPython's repository has it: under Lib/."""
    return {
        "Lib/" + path.relative_to(STDLIB).as_posix(): path.read_bytes()
        for path in sorted(STDLIB.rglob("*.py"))
        if not {"site-packages", "dist-packages", "__pycache__"} & set(path.relative_to(STDLIB).parts)
    }


def snapshot_files(codebase: Codebase) -> dict[str, bytes]:
    base = SITE_PACKAGES / codebase.package
    if not base.is_dir():
        pytest.fail(f"{codebase.package} is not installed in {SITE_PACKAGES}")
    prefix = f"{codebase.root}/" if codebase.root else ""
    return {
        prefix + path.relative_to(SITE_PACKAGES).as_posix(): path.read_bytes()
        for path in sorted(base.rglob("*.py*"))
        if path.suffix in {".py", ".pyi"} and "__pycache__" not in path.parts
    }


def module_name(path: str, root: str) -> str:
    stem = path.removeprefix(f"{root}/" if root else "").removesuffix(".py")
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _Definitions(ast.NodeVisitor):
    """Every function and class in a module by dotted name (no <locals>).

    Classes count because a name can be a class in one branch and a function in another
    (`try: class X ... except: def X`): the answer holds every definition of the name.
    """

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.found: dict[str, list[DefNode]] = {}

    def _enter(self, node: DefNode) -> None:
        self.stack.append(node.name)
        self.found.setdefault(".".join(self.stack), []).append(node)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter  # noqa: N815


class Oracle:
    """`ast.get_source_segment` for one file, handed only the lines it needs (it splits what it gets)."""

    def __init__(self, text: str) -> None:
        self.text = text
        # Where each line starts, split where the tokenizer splits (CRLF, CR, LF).
        self.starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", text))]

    def segment(self, node: DefNode) -> tuple[str, int]:
        """The definition's text, with its offset in the file."""
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        assert node.end_lineno is not None
        last = node.end_lineno
        piece = self.text[self.starts[first - 1] : self.starts[last] if last < len(self.starts) else None]
        line = piece.splitlines()[0]
        col = node.col_offset
        if node.decorator_list:
            # ast's segment starts at `def`; the review starts at the first decorator line's `@`.
            assert line.lstrip().startswith("@"), line
            col = len(line) - len(line.lstrip())
        # Whole lines: the segment ends where its last line does (`...  # pragma: no cover`).
        last_line = re.split(r"\r\n|\r|\n", piece)[last - first]
        span = SimpleNamespace(
            lineno=1, col_offset=col, end_lineno=last - first + 1, end_col_offset=len(last_line.encode())
        )
        segment = ast.get_source_segment(piece, span)  # type: ignore[arg-type]
        assert segment is not None
        return segment, self.starts[first - 1] + len(line.encode()[:col].decode())

    def expected(self, nodes: list[DefNode]) -> str:
        """All definitions of one name: joined by the file's own text where only blank lines and
        comments lie between them, else by one blank line."""
        pieces: list[str] = []
        end: int | None = None
        for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset)):
            segment, start = self.segment(node)
            if end is not None:
                gap = self.text[end:start]
                lines = re.split(r"\r\n|\r|\n", gap)
                pieces.append(
                    gap if all(not x.strip() or x.lstrip().startswith("#") for x in lines) else "\n\n"
                )
            pieces.append(segment)
            end = start + len(segment)
        return "".join(pieces)


@pytest.mark.parametrize("codebase", CODEBASES, ids=lambda c: c.package)
def test_every_function_resolves_to_its_exact_source(codebase: Codebase) -> None:
    files = snapshot_files(codebase)
    checked = check_every_function(SnapshotIndex(files, f"someone/{codebase.package}"), files, codebase.root)
    assert checked > 50, f"only {checked} functions in {codebase.package}: is it the package we think?"


@pytest.mark.slow
def test_every_function_of_the_standard_library() -> None:
    # 1,800 files in the wild: Latin-1 cookies, CRLF and tab test data, Python 2 grammar samples.
    # Every function of the unusual files (cookies, BOM, CR, tabs, form feeds, non-ASCII) and of
    # every 8th other file is checked against the index of the whole library: checking all of it
    # costs a minute of ast's pure-Python line splitting in the oracle, and adds nothing new.
    files = stdlib_files()
    unusual = {path for path, data in files.items() if _unusual(data)}
    ordinary = sorted(set(files) - unusual)[::8]
    checked = check_every_function(
        SnapshotIndex(files, "python/cpython"), {p: files[p] for p in sorted(unusual) + ordinary}, "Lib"
    )
    assert len(unusual) > 50
    assert checked > 5_000


def _unusual(data: bytes) -> bool:
    head = data[:300]
    return (
        not data.isascii()
        or any(mark in data for mark in (b"\r", b"\t", b"\x0c"))
        or re.search(rb"^[ \t\f]*#.*?coding[:=]", head, re.MULTILINE) is not None
    )


def check_every_function(snapshot: SnapshotIndex, files: dict[str, bytes], root: str) -> int:
    checked = 0
    for path, data in files.items():
        if not path.endswith(".py"):
            continue
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            text = data.decode(encoding)
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError):
            continue
        oracle = Oracle(text)
        collector = _Definitions()
        collector.visit(tree)
        module = module_name(path, root)
        for qualname, nodes in collector.found.items():
            name = f"{module}.{qualname}"
            found = snapshot.find(name)
            assert (found.path, found.qualified_name) == (path, name)
            nodes.sort(key=lambda n: (n.lineno, n.col_offset))
            assert found.source == oracle.expected(nodes), name
            first = nodes[0].decorator_list[0].lineno if nodes[0].decorator_list else nodes[0].lineno
            assert (found.start_line, found.end_line, found.definitions) == (
                first,
                max(n.end_lineno or n.lineno for n in nodes),
                len(nodes),
            )
            if root:
                assert snapshot.find(f"{root}.{name}").source == found.source
            # The bare dotted name inside the module exists, so it must resolve, to a definition
            # whose full name ends with it (which one is the ranking's business).
            short = snapshot.find(qualname)
            assert short.qualified_name == qualname or short.qualified_name.endswith(f".{qualname}")
            checked += 1
    return checked


@pytest.mark.parametrize("codebase", CODEBASES, ids=lambda c: c.package)
def test_every_public_name_exported_by_a_package_resolves_where_it_is_defined(codebase: Codebase) -> None:
    files = snapshot_files(codebase)
    snapshot = SnapshotIndex(files, f"someone/{codebase.package}")
    checked = 0
    failures: list[str] = []
    for public, defining in exported_names(files, codebase):
        try:
            expected = snapshot.find(defining)
        except NameNotFound:
            # Not made by a `def`/`class` at that name (a class built by a call): no source to agree on.
            continue
        try:
            found = snapshot.find(public)
        except NameNotFound as error:
            failures.append(f"{public} -> {error}")
            continue
        if found != expected:
            failures.append(f"{public} -> {found.qualified_name} ({found.path}), not {defining}")
        checked += 1
    assert not failures, "\n".join(failures)
    # msgspec's public names are mostly its C extension's: only its pure-Python ones count.
    assert checked > 5, f"only {checked} re-exported names in {codebase.package}"


def exported_names(files: dict[str, bytes], codebase: Codebase) -> Iterator[tuple[str, str]]:
    """(public name, defining name) of every class and function a package `__init__` of the codebase
    lists in `__all__` or imports, and of their methods, as the imported package says."""
    for path, data in sorted(files.items()):
        if not path.endswith("/__init__.py"):
            continue
        package = module_name(path, codebase.root)
        imports = [node for node in ast.walk(ast.parse(data)) if isinstance(node, ast.ImportFrom)]
        imported = {alias.asname or alias.name for node in imports for alias in node.names}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated modules warn on import: not our concern
                module = importlib.import_module(package)
        except ImportError:  # an optional dependency is missing: that package is not checked
            continue
        if "*" in imported:  # a star import brings public names
            imported.update(name for name in vars(module) if not name.startswith("_"))
        # Only real attributes: a module `__getattr__` (lazy or deprecated names) is code, not an import.
        attributes = vars(module)
        for name in sorted(imported - {"*"} | set(attributes.get("__all__", ()))):
            obj = attributes.get(name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            defined_in = getattr(obj, "__module__", None) or ""
            if defined_in.split(".")[0] != codebase.package or "<locals>" in obj.__qualname__:
                continue
            public, defining = f"{package}.{name}", f"{defined_in}.{obj.__qualname__}"
            yield public, defining
            if inspect.isclass(obj):
                for attribute, value in vars(obj).items():
                    function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
                    function = function.fget if isinstance(function, property) else function
                    if (
                        inspect.isfunction(function)
                        and function.__qualname__ == f"{obj.__qualname__}.{attribute}"
                    ):
                        yield f"{public}.{attribute}", f"{defining}.{attribute}"
