"""What is shown of a definition, a class or a constant: Python-like lines, each cut short."""

from __future__ import annotations

import ast
import re
import tokenize
from dataclasses import dataclass, field

from analyzer.uses.headers import Reader, definition_header, tokens_of
from analyzer.uses.names import Definition

# A docstring's first paragraph, an assigned value, a default value in a signature, cut to these.
MAX_DOC_CHARS = 200
MAX_VALUE_CHARS = 80
MAX_DEFAULT_CHARS = 40
# Attribute lines of one class; the rest are counted in a comment.
MAX_MEMBERS = 40
# An `__init__` parsed for the attributes it sets, and a constant's statement: longer than this,
# the attributes are not shown, and the constant is shown from its first line.
_INIT_CHARS = 50_000
_STATEMENT_CHARS = 4_000
# What a class shows of its `__init__`.
SIGNATURE, ATTRIBUTES = "signature", "attributes"


@dataclass(slots=True)
class ClassSummary:
    """A class as read for showing (`analyzer.uses.context` reads it), its methods cut out."""

    path: str
    qualname: str
    # Header, docstring and the statements of the body other than definitions (cut to `...`).
    node: ast.ClassDef
    # `__init__`, as text of its own (dedented), if the class defines one.
    init: str | None
    bases: list[str] = field(default_factory=list)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


def _doc_line(text: str) -> str:
    """A docstring's text as one quoted line of Python."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    return f'"""{text}"""'


def render_signature(node: Definition) -> str:
    """`def`/`async def` with its decorators, cut defaults, and its docstring's first paragraph,
    written as PEP 8 has it (`name: int = 0`, `name=0`)."""
    doc = ast.get_docstring(node)
    if isinstance(node, ast.ClassDef):
        node.body = []
        header = ast.unparse(node)
    else:
        lines = [f"@{ast.unparse(decorator)}" for decorator in node.decorator_list]
        keyword = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        # `def f[T](...)`, Python 3.12 on: the attribute is not there before.
        type_params = getattr(node, "type_params", None) or []
        generic = f"[{', '.join(ast.unparse(p) for p in type_params)}]" if type_params else ""
        returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
        lines.append(f"{keyword} {node.name}{generic}({_arguments(node.args)}){returns}:")
        header = "\n".join(lines)
    return header + (f"\n    {_doc_line(_first_paragraph(doc))}" if doc else "")


def _first_paragraph(doc: str) -> str:
    return _cut(" ".join(doc.split("\n\n", 1)[0].split()), MAX_DOC_CHARS)


def _arguments(arguments: ast.arguments) -> str:
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    defaults.extend(arguments.defaults)
    shown: list[str] = []
    for number, (argument, default) in enumerate(zip(positional, defaults, strict=True), start=1):
        shown.append(_argument(argument, default))
        if number == len(arguments.posonlyargs):
            shown.append("/")
    if arguments.vararg is not None:
        shown.append("*" + _argument(arguments.vararg, None))
    elif arguments.kwonlyargs:
        shown.append("*")
    for argument, keyword_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        shown.append(_argument(argument, keyword_default))
    if arguments.kwarg is not None:
        shown.append("**" + _argument(arguments.kwarg, None))
    return ", ".join(shown)


def _argument(argument: ast.arg, default: ast.expr | None) -> str:
    text = argument.arg
    if argument.annotation is not None:
        text += f": {ast.unparse(argument.annotation)}"
    if default is not None:
        value = ast.unparse(default)
        value = value if len(value) <= MAX_DEFAULT_CHARS else "..."
        text += f" = {value}" if argument.annotation is not None else f"={value}"
    return text


def class_assigned(node: ast.ClassDef) -> dict[str, ast.stmt]:
    """The names the class body binds by assignment (annotated or not), first binding each."""
    assigned: dict[str, ast.stmt] = {}
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            assigned.setdefault(statement.target.id, statement)
        elif isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, statement)
    return assigned


def render_class(cls: ClassSummary, *, reads: set[str], init: str | None) -> str:
    """A class as its header, docstring's first paragraph, annotated attributes (and the plain ones of
    `reads`), and `__init__`: with `init` SIGNATURE its signature, with ATTRIBUTES also what it
    sets on self, with None nothing."""
    node = cls.node
    doc = ast.get_docstring(node)
    members: list[str] = []
    for name, statement in class_assigned(node).items():
        if isinstance(statement, ast.AnnAssign):
            value = f" = {_cut(ast.unparse(statement.value), MAX_VALUE_CHARS)}" if statement.value else ""
            members.append(f"{name}: {ast.unparse(statement.annotation)}{value}")
        elif name in reads and isinstance(statement, ast.Assign):
            members.append(f"{name} = {_cut(ast.unparse(statement.value), MAX_VALUE_CHARS)}")
    body = node.body
    node.body = []
    lines = [ast.unparse(node)]
    node.body = body
    if doc:
        lines.append("    " + _doc_line(_first_paragraph(doc)))
    lines.extend("    " + member for member in members[:MAX_MEMBERS])
    if len(members) > MAX_MEMBERS:
        lines.append(f"    # ... and {len(members) - MAX_MEMBERS} more attributes")
    header = definition_header(cls.init) if cls.init is not None and init is not None else None
    if isinstance(header, ast.FunctionDef | ast.AsyncFunctionDef):
        positional = [*header.args.posonlyargs, *header.args.args]
        self_name = positional[0].arg if positional else "self"
        header.decorator_list = []
        signature = render_signature(header).split("\n", 1)[0]
        attributes = _self_attributes(cls.init or "", self_name) if init == ATTRIBUTES else []
        if attributes:
            lines.append("    " + signature)
            lines.extend("        " + a for a in attributes[:MAX_MEMBERS])
            if len(attributes) > MAX_MEMBERS:
                lines.append(f"        # ... and {len(attributes) - MAX_MEMBERS} more attributes")
        else:
            lines.append(f"    {signature} ...")
    return "\n".join(lines)


def _self_attributes(init: str, self_name: str) -> list[str]:
    """What `__init__` sets on self, in order: `self.x: T` where annotated, else `self.x = value`."""
    if len(init) > _INIT_CHARS:
        return []
    try:
        tree = ast.parse(init)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    # name -> (where first set, as shown, annotated): an annotated binding says most, else the first.
    found: dict[str, tuple[tuple[int, int], str, bool]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            targets: list[ast.expr] = [node.target]
        elif isinstance(node, ast.Assign):
            targets = node.targets
        else:
            continue
        for target in targets:
            if not (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == self_name
            ):
                continue
            where = (target.lineno, target.col_offset)
            if isinstance(node, ast.AnnAssign):
                shown, annotated = f"{self_name}.{target.attr}: {ast.unparse(node.annotation)}", True
            else:
                shown, annotated = (
                    f"{self_name}.{target.attr} = {_cut(ast.unparse(node.value), MAX_VALUE_CHARS)}",
                    False,
                )
            known = found.get(target.attr)
            if known is None:
                found[target.attr] = (where, shown, annotated)
            elif annotated and not known[2]:
                found[target.attr] = (min(where, known[0]), shown, annotated)
    return [shown for _, shown, _ in sorted(found.values())]


def render_constant(text: str, name: str) -> str | None:
    """`NAME = value` (value cut) for the first assignment of `name` at the top level of `text`
    (at the start of a line); None if there is none."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    match = re.search(rf"^{re.escape(name)}[ \t]*(?::|=(?!=))", text, re.MULTILINE)
    if match is None:
        return None
    start = match.start()
    piece = text[start : start + _STATEMENT_CHARS]
    reader = Reader(piece)
    end: int | None = None
    for token in tokens_of(reader):
        if token.type == tokenize.NEWLINE:
            end = reader.offset(token.start)
            break
    if end is None:
        # Longer than any value worth showing: its first line says what it is.
        return _cut(piece.split("\n", 1)[0].rstrip(), len(name) + 3 + MAX_VALUE_CHARS)
    try:
        tree = ast.parse(piece[:end])
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    statement = tree.body[0] if len(tree.body) == 1 else None
    if isinstance(statement, ast.AnnAssign) and statement.value is not None:
        value = _cut(ast.unparse(statement.value), MAX_VALUE_CHARS)
        return f"{ast.unparse(statement.target)}: {ast.unparse(statement.annotation)} = {value}"
    if isinstance(statement, ast.Assign):
        targets = " = ".join(ast.unparse(t) for t in statement.targets)
        return f"{targets} = {_cut(ast.unparse(statement.value), MAX_VALUE_CHARS)}"
    return None
