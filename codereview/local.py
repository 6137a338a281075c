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

from analyzer.lintconfig import MAX_CONFIG_BYTES as MAX_CONFIG_READ_BYTES
from analyzer.lintconfig import LintConfigs
from codereview.errors import CliError, ExitCode
from jobs_contract.messages import CONFIG_FILE_NAMES
from review_contract import MAX_MODULE_BYTES, ReviewContext

# A source file this large is generated or data; parsing it would take seconds and much memory.
MAX_FILE_BYTES = 5 * 1024 * 1024
_TARGET = re.compile(r"(?P<path>.+?):(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True)
class LocalFunction:
    name: str
    line: int
    source: str
    # The lines it spans in its file (decorators included), and whether its source is those lines
    # as they are (one definition, or several standing together): then it is checked in its module.
    start_line: int = 0
    end_line: int = 0
    whole: bool = False


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
    spans = []
    for node in nodes:
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        end = node.end_lineno or node.lineno
        spans.append((start, end))
        parts.append(textwrap.dedent("".join(lines[start - 1 : end])).rstrip())
    source = "\n\n".join(parts) + "\n"
    first, last = spans[0][0], spans[-1][1]
    whole = source == textwrap.dedent("".join(lines[first - 1 : last])).rstrip() + "\n"
    return LocalFunction(
        name=name, line=nodes[0].lineno, source=source, start_line=first, end_line=last, whole=whole
    )


# How far up from a file its lint configuration is looked for, when no `.git` folder ends the walk.
_MAX_LEVELS = 32


def review_context(path: Path, text: str, function: LocalFunction) -> ReviewContext | None:
    """Where `function` stands in its file, for a review in its module (review_contract), or None.

    The project's ruff configuration is looked for from the file's folder up to the repository
    root (the folder holding `.git`), as ruff itself finds it; `extend` chains stay within. No
    type check runs on local files (`types` is empty), and the model is not told what the
    function uses. None when the file is too large or the function's source is not its lines.
    """
    if not function.whole or len(text.encode("utf-8", errors="surrogatepass")) > MAX_MODULE_BYTES:
        return None
    root, relative = _project_root(path.resolve())
    configs: dict[str, bytes] = {}
    folder = path.resolve().parent
    while True:
        for name in CONFIG_FILE_NAMES:
            candidate = folder / name
            if candidate.is_file() and candidate.stat().st_size <= MAX_CONFIG_READ_BYTES:
                configs[candidate.relative_to(root).as_posix()] = candidate.read_bytes()
        if folder == root:
            break
        folder = folder.parent
    return ReviewContext(
        path=relative,
        module=text,
        start_line=function.start_line,
        end_line=function.end_line,
        lint=LintConfigs(configs).for_path(relative) if configs else None,
        types=[],
    )


def _project_root(file: Path) -> tuple[Path, str]:
    """The folder the file's repository starts at (`.git`, else as far up as looked), and its path there."""
    folder = file.parent
    for _ in range(_MAX_LEVELS):
        if (folder / ".git").exists() or folder.parent == folder:
            break
        folder = folder.parent
    return folder, file.relative_to(folder).as_posix()
