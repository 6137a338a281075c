"""Functions of a local Python file, cut out as the analyzer cuts them from a repository.

Each function's exact text (decorators included, dedented so a method parses on its own) is what
`codereview code` sends to the gateway. Names are dotted qualified names: `func`, `Class.method`,
`outer.inner`; definitions sharing one name (property getter and setter, overloads) go together.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from codereview.errors import CliError, ExitCode

# A source file this large is generated or data; parsing it would take seconds and much memory.
MAX_FILE_BYTES = 5 * 1024 * 1024
_TARGET = re.compile(r"(?P<path>.+?):(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True)
class LocalFunction:
    name: str
    line: int
    source: str


def split_target(target: str) -> tuple[Path, str | None]:
    """`path/to/file.py[:name]` -> (path, name or None)."""
    match = _TARGET.fullmatch(target)
    if match is not None and not Path(target).exists():
        return Path(match["path"]), match["name"]
    return Path(target), None


def read_source(path: Path) -> str:
    """The text of a Python file (its coding cookie honoured); CliError NOT_FOUND or USAGE."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CliError(f"{path} {what}", ExitCode.NOT_FOUND)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CliError(
            f"{path} is {size} bytes: over the {MAX_FILE_BYTES} bytes a source file may have here",
            ExitCode.USAGE,
        )
    try:
        return importlib.util.decode_source(path.read_bytes())
    except (UnicodeDecodeError, SyntaxError, LookupError) as exc:
        raise CliError(f"{path} is not readable as Python source: {exc}", ExitCode.USAGE) from None


def functions_in(path: Path, text: str) -> list[LocalFunction]:
    """Every function and method of the file (nested functions stay inside their outer one),
    in the order of the file. Raises CliError (USAGE) when the file does not parse."""
    tree = _parse(path, text)
    found: dict[str, list[Definition]] = {}
    _collect(tree.body, "", found, nested=False)
    functions = {name: _functions(nodes) for name, nodes in found.items()}
    return [_cut(name, nodes, text) for name, nodes in functions.items() if nodes]


def function_named(path: Path, text: str, name: str) -> LocalFunction:
    """The function `name` (dotted: `Class.method`, `outer.inner`); CliError NOT_FOUND with close names."""
    tree = _parse(path, text)
    found: dict[str, list[Definition]] = {}
    _collect(tree.body, "", found, nested=True)
    nodes = _functions(found.get(name, []))
    if nodes:
        return _cut(name, nodes, text)
    functions = [n for n, defs in found.items() if _functions(defs)]
    close = difflib.get_close_matches(name, functions, n=5, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise CliError(f"no function {name!r} in {path}{hint}", ExitCode.NOT_FOUND, did_you_mean=close)


def _parse(path: Path, text: str) -> ast.Module:
    try:
        return ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise CliError(f"{path}:{exc.lineno}: does not parse: {exc.msg}", ExitCode.USAGE) from None
    except (RecursionError, MemoryError):
        raise CliError(f"{path} is nested too deeply to parse", ExitCode.USAGE) from None


def _collect(body: list[ast.stmt], prefix: str, out: dict[str, list[Definition]], *, nested: bool) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = prefix + node.name
            out.setdefault(name, []).append(node)
            if isinstance(node, ast.ClassDef) or nested:
                _collect(node.body, name + ".", out, nested=nested)


def _functions(nodes: list[Definition]) -> list[Definition]:
    return [node for node in nodes if not isinstance(node, ast.ClassDef)]


def _cut(name: str, nodes: list[Definition], text: str) -> LocalFunction:
    lines = text.splitlines(keepends=True)
    parts = []
    for node in nodes:
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        end = node.end_lineno or node.lineno
        parts.append(textwrap.dedent("".join(lines[start - 1 : end])).rstrip())
    return LocalFunction(name=name, line=nodes[0].lineno, source="\n\n".join(parts) + "\n")
