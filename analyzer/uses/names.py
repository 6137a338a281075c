"""What a function's source uses: the names it reads, less those it binds itself."""

from __future__ import annotations

import ast
from dataclasses import dataclass

# The dotted parts of one use looked up (`a.b.c.d`): deeper is an attribute of an attribute.
_MAX_PARTS = 4

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True, slots=True)
class Use:
    """One name the function uses: `parts` as written from its root (`("models", "load")`).

    `via`: "module" for a name of the module (or imported inside the function, then `imported`
    says from where and `parts[0]` is the imported name), "self" or "super" for an attribute of
    the function's own instance or class, or of its bases.
    """

    via: str
    parts: tuple[str, ...]
    imported: tuple[int, str] | None = None


def dedent(source: str, indent: str) -> str:
    """`source` (its first line at its `def`/`class`, the later ones indented as in the file) as a
    module of its own, with `\\n` line ends."""
    if "\r" in source:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
    if indent:
        source = source.replace("\n" + indent, "\n")
    return source


def parse_definitions(source: str, indent: str) -> list[Definition]:
    """The defs and classes of `source` (one, or several: overloads, getter and setter); empty
    when it does not parse."""
    try:
        tree = ast.parse(dedent(source, indent))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [s for s in tree.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]


def decorated_with(node: Definition, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in node.decorator_list)


def _bound_names(defs: list[Definition]) -> tuple[set[str], dict[str, tuple[tuple[int, str], str]]]:
    """The names the definitions bind themselves (parameters, assignments, nested defs: not the
    module's), and those they import: local name -> ((level, module), imported name)."""
    local: set[str] = set()
    imports: dict[str, tuple[tuple[int, str], str]] = {}
    declared_global: set[str] = set()
    for definition in defs:
        for node in ast.walk(definition):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                local.add(node.id)
            elif isinstance(node, ast.arg):
                local.add(node.arg)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node is not definition:  # its own name is the module's
                    local.add(node.name)
            elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
                local.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                local.add(node.rest)
            elif isinstance(node, ast.Global):
                declared_global.update(node.names)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    imports[alias.asname or alias.name] = ((node.level, node.module or ""), alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module, _, last = alias.name.rpartition(".")
                        imports[alias.asname] = ((0, module), last)
                    else:
                        first = alias.name.split(".", 1)[0]
                        imports[first] = ((0, ""), first)
    return local - declared_global, imports


def used_names(defs: list[Definition], self_names: set[str]) -> list[Use]:
    """The names the definitions use, each once, in order of first use in the source."""
    local, imports = _bound_names(defs)
    first: dict[Use, tuple[int, int]] = {}

    def add(use: Use, node: ast.expr) -> None:
        where = (node.lineno, node.col_offset)
        if use not in first or where < first[use]:
            first[use] = where

    def named(root: str, chain: list[str], node: ast.expr) -> None:
        if root in self_names:
            if chain:
                add(Use("self", (chain[0],)), node)
        elif root in imports:
            origin, imported = imports[root]
            add(Use("module", (imported, *chain)[:_MAX_PARTS], origin), node)
        elif root not in local:
            add(Use("module", (root, *chain)[:_MAX_PARTS]), node)

    # An explicit stack, not recursion: a long chain of `a + b + ...` nests as deep as it is long.
    stack: list[ast.AST] = list(defs)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Attribute):
            chain: list[str] = []
            inner: ast.expr = node
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            chain.reverse()
            if isinstance(inner, ast.Name):
                named(inner.id, chain, node)
                continue
            if _is_super_call(inner) and "super" not in local:
                add(Use("super", (chain[0],)), node)
                continue
            stack.append(inner)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                named(node.id, [], node)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return sorted(first, key=lambda use: first[use])


def _is_super_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def unsubscripted(node: ast.expr) -> ast.expr:
    """`Generic[T]` -> `Generic`: the class a subscripted base names."""
    return node.value if isinstance(node, ast.Subscript) else node
