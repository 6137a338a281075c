"""What a reviewed function uses from its repository, as compact text for the model's prompt.

The model reviews one function; what it calls is elsewhere. This gives it the signatures (and the
first paragraph of the docstrings) of the functions and classes the function calls or names, the
attributes of its own class, and the module constants it reads, all found in the snapshot: a
name that leads outside it (stdlib, third-party) is left out, since the model knows those.

Only the function's own source is parsed here whole (it is small); what it uses is read from the
files through the snapshot's `SnapshotIndex` (its tables come from its own parser, within the
parse budget, and a file it refuses is skipped), and each definition shown is parsed from its
header and docstring alone, a class from its text with the methods cut out. Nothing is executed.
"""

from __future__ import annotations

import ast
import logging
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

from analyzer.locate import FoundFunction, SnapshotIndex
from analyzer.locate.tables import Span, collector_paused
from review_contract import MAX_CONTEXT_CHARS

logger = logging.getLogger("analyzer.uses")

# Entries (a class, a function, a constant) in one text: the model needs the few it calls most.
MAX_ENTRIES = 30
# Distinct names of the function looked up; a function that names more is huge and generated.
MAX_NAMES = 150
# The reviewed function is parsed whole, in this process: longer than this (20 ms of parsing, and
# far more than is reviewed), it is not looked into at all.
MAX_SOURCE_CHARS = 100_000
# A docstring's first paragraph, an assigned value, a default value in a signature, cut to these.
MAX_DOC_CHARS = 200
MAX_VALUE_CHARS = 80
MAX_DEFAULT_CHARS = 40
# Attribute lines of one class; the rest are counted in a comment.
MAX_MEMBERS = 40
# How far up the bases `self.method` and `super().method` are looked for.
MAX_BASE_DEPTH = 4
# One entry longer than this (a signature with a page of annotations) is left out, not cut.
MAX_ENTRY_CHARS = 2_000
# A class parsed with its methods cut out, an `__init__` parsed for the attributes it sets, and a
# constant's statement: longer than this, they are shown from their header (or first line) only.
_CLASS_CHARS = 100_000
_INIT_CHARS = 50_000
_STATEMENT_CHARS = 4_000
# The dotted parts of one use looked up (`a.b.c.d`): deeper is an attribute of an attribute.
_MAX_PARTS = 4
# An all-capitals name, the convention for a module constant.
_CONSTANT = re.compile(r"_*[A-Z][A-Z0-9_]*\Z")
_CALLEE, _CONSTANT_KIND = 0, 1
# What a class shows of its `__init__`.
_SIGNATURE, _ATTRIBUTES = "signature", "attributes"

_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True, slots=True)
class _Use:
    """One name the function uses: `parts` as written from its root (`("models", "load")`).

    `via`: "module" for a name of the module (or imported inside the function, then `imported`
    says from where and `parts[0]` is the imported name), "self" or "super" for an attribute of
    the function's own instance or class, or of its bases.
    """

    via: str
    parts: tuple[str, ...]
    imported: tuple[int, str] | None = None


@dataclass(slots=True)
class _Entry:
    path: str
    rank: tuple[int, int]
    text: str


@dataclass(slots=True)
class _Class:
    path: str
    qualname: str
    # Header, docstring and the statements of the body other than definitions (cut to `...`).
    node: ast.ClassDef
    # `__init__`, as text of its own (dedented), if the class defines one.
    init: str | None
    bases: list[str] = field(default_factory=list)


def uses_of(index: SnapshotIndex, found: FoundFunction, *, max_chars: int = MAX_CONTEXT_CHARS) -> str:
    """What `found` (a function, method or class of `index`'s snapshot) uses from the snapshot.

    Plain text of Python-like lines, at most `max_chars` characters of whole entries: the
    function's own class (header, annotated attributes, what `__init__` sets on self), then the
    functions and classes it uses in order of first use (signature and docstring's first
    paragraph; a class's header, `__init__` signature and annotated attributes), then the module
    constants it reads (`NAME = value`, cut), grouped by file under `# from path` lines. Empty
    when it uses nothing of the snapshot, or when its source does not parse or is longer than
    `MAX_SOURCE_CHARS`. Never raises for any source: a file that does not parse (or that the
    index's parser refuses) is skipped, and so is what nests too deep to render. Raises KeyError
    if `found` is not a definition of `index`. Synchronous and CPU-bound: call it in a thread.
    """
    if max_chars <= 0 or len(found.source) > MAX_SOURCE_CHARS:
        return ""
    defs = _parse_definitions(found.source, found.indent)
    if not defs:
        return ""
    try:
        # Thousands of small trees, none with cycles: the cyclic collector would only scan the
        # server's whole heap (its snapshots) for nothing, holding the GIL for a long pause.
        with collector_paused():
            return _Uses(index, found, defs).render(max_chars)
    except RecursionError:  # a pathological nesting in a file of the snapshot: no context, no crash
        logger.warning("no context for %s: nesting too deep", found.qualified_name)
        return ""


class _Uses:
    """The work of one `uses_of`: the texts and classes it read, the entries it made."""

    def __init__(self, index: SnapshotIndex, found: FoundFunction, defs: list[_Def]) -> None:
        self.index = index
        self.found = found
        self.defs = defs
        self._texts: dict[str, str | None] = {}
        self._children: dict[str, dict[str, list[tuple[str, Span]]]] = {}
        self._classes: dict[tuple[str, str], _Class | None] = {}
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.qualname = _own_qualname(index, found)
        self.own: _Class | None = None
        parent = self.qualname.rpartition(".")[0]
        if parent:
            self.own = self._class_named(found.path, parent)
        # Attributes of its own class the function reads (`self.limit`): shown with the class.
        self.own_reads: set[str] = set()

    # -- what the function uses --------------------------------------------------------------------

    def render(self, max_chars: int) -> str:
        first = self.defs[0]
        self_names: set[str] = set()
        if self.own is not None and isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef):
            positional = [*first.args.posonlyargs, *first.args.args]
            if positional and not _decorated_with(first, "staticmethod"):
                self_names.add(positional[0].arg)
        for order, use in enumerate(_uses(self.defs, self_names)[:MAX_NAMES]):
            if len(self.entries) >= MAX_ENTRIES:
                break  # the first used are the ones shown: no need to read more
            try:
                if use.via == "module":
                    self._module_use(use, order)
                else:
                    self._member_use(use, order)
            except RecursionError:  # a default or annotation nested thousands deep: not shown
                continue
        blocks: list[str] = []
        if self.own is not None:
            own = self._own_class_text(self.own)
            if own is not None:
                blocks.append(f"# class {self.own.qualname} ({self.own.path})\n{own}")
        ordered = sorted(self.entries.values(), key=lambda e: e.rank)
        groups: dict[str, list[_Entry]] = {}
        for entry in ordered:
            groups.setdefault(entry.path, []).append(entry)
        for path, entries in groups.items():
            header = f"# from {path}\n"
            for entry in entries:
                blocks.append(header + entry.text)
                header = ""
        return _fit(blocks[:MAX_ENTRIES], max_chars)

    def _module_use(self, use: _Use, order: int) -> None:
        """A name of the module (or imported in the function): the longest prefix that is a
        definition of the snapshot, else a constant."""
        for end in range(len(use.parts), 0, -1):
            name = ".".join(use.parts[:end])
            reached = self.index.reach(self.found.path, name, imported=use.imported)
            if reached.definition is not None:
                self._add_definition(reached.definition.path, reached.qualname, order)
                return
            last = use.parts[end - 1]
            if _CONSTANT.match(last):
                for path, assigned in reached.unbound:
                    if self._add_constant(path, assigned, order):
                        return

    def _member_use(self, use: _Use, order: int) -> None:
        """`self.name` / `super().name`: a method or property of the class or its bases, else an
        attribute (shown with the own class when the class itself assigns it)."""
        own = self.own
        if own is None:
            return
        name = use.parts[0]
        seen = {(own.path, own.qualname)}
        level = [own] if use.via == "self" else self._bases(own, seen)
        for _ in range(MAX_BASE_DEPTH + 1):
            following: list[_Class] = []
            for cls in level:
                reached = self.index.reach(cls.path, f"{cls.qualname}.{name}")
                if reached.definition is not None:
                    self._add_definition(reached.definition.path, reached.qualname, order)
                    return
                if cls is own and name in _class_assigned(cls.node):
                    self.own_reads.add(name)
                    return
                following.extend(self._bases(cls, seen))
            level = following
            if not level:
                return

    def _bases(self, cls: _Class, seen: set[tuple[str, str]]) -> list[_Class]:
        found: list[_Class] = []
        for base in cls.bases:
            reached = self.index.reach(cls.path, base)
            if reached.definition is None:
                continue
            key = (reached.definition.path, reached.qualname)
            if key in seen:
                continue
            seen.add(key)
            parsed = self._class(reached.definition.path, reached.qualname)
            if parsed is not None:
                found.append(parsed)
        return found

    # -- entries -----------------------------------------------------------------------------------

    def _add_definition(self, path: str, qualname: str, order: int) -> None:
        key = (path, qualname)
        if key in self.entries or (path == self.found.path and qualname == self.qualname):
            return  # two names for one definition, or the function calling itself
        if self.own is not None and key == (self.own.path, self.own.qualname):
            return  # shown first, as the own class
        spans = self.index.definitions(path).get(qualname, [])
        if not spans:
            return
        text: str | None
        cls = self._class(path, qualname)
        if cls is not None:
            text = _class_text(cls, reads=set(), init=_SIGNATURE)
        else:
            headers = [self._header(path, span) for span in spans[:4]]
            shown = [_signature(h) for h in headers if h is not None]
            text = "\n".join(shown) if shown else None
            if text is not None and "." in qualname:
                text = f"# {qualname}\n{text}"
        if text is not None and len(text) <= MAX_ENTRY_CHARS:
            self.entries[key] = _Entry(path, (_CALLEE, order), text)

    def _add_constant(self, path: str, name: str, order: int) -> bool:
        key = (path, "=" + name)
        if key in self.entries:
            return True
        text = self._text(path)
        shown = _constant(text, name) if text is not None else None
        if shown is None:
            return False
        self.entries[key] = _Entry(path, (_CONSTANT_KIND, order), shown)
        return True

    def _own_class_text(self, own: _Class) -> str | None:
        # An `__init__` under review is not shown again.
        init = None if self.qualname == f"{own.qualname}.__init__" else _ATTRIBUTES
        text = _class_text(own, reads=self.own_reads, init=init)
        return text if len(text) <= MAX_ENTRY_CHARS * 2 else None

    # -- reading the snapshot ----------------------------------------------------------------------

    def _text(self, path: str) -> str | None:
        if path not in self._texts:
            self._texts[path] = self.index.text(path)
        return self._texts[path]

    def _segment(self, path: str, span: Span) -> str | None:
        """The text of one definition, dedented to a module of its own."""
        text = self._text(path)
        if text is None:
            return None
        line_start = max(text.rfind("\n", 0, span.start), text.rfind("\r", 0, span.start)) + 1
        return _dedent(text[span.start : span.end], text[line_start : span.start])

    def _header(self, path: str, span: Span) -> _Def | None:
        segment = self._segment(path, span)
        return _header(segment) if segment is not None else None

    def _class_named(self, path: str, dotted: str) -> _Class | None:
        reached = self.index.reach(path, dotted)
        if reached.definition is None:
            return None
        return self._class(reached.definition.path, reached.qualname)

    def _class(self, path: str, qualname: str) -> _Class | None:
        """The class `qualname` of the file at `path` (its first definition), or None if that is
        not a class."""
        key = (path, qualname)
        if key not in self._classes:
            self._classes[key] = self._read_class(path, qualname)
        return self._classes[key]

    def _read_class(self, path: str, qualname: str) -> _Class | None:
        spans = self.index.definitions(path).get(qualname)
        text = self._text(path)
        if not spans or text is None:
            return None
        span = spans[0]
        segment = self._segment(path, span)
        header = _header(segment) if segment is not None else None
        if not isinstance(header, ast.ClassDef):
            return None
        # The class without its methods and nested classes: what is left is short, and is all
        # that its attributes need.
        pieces: list[str] = []
        at = span.start
        init: str | None = None
        for name, child in self._children_of(path).get(qualname, ()):
            if child.start < at or child.end > span.end:
                continue  # another definition of the class, or overlapping
            pieces.append(text[at : child.start])
            pieces.append("...")
            at = child.end
            if name == "__init__":
                # The last one: after `@overload`s, the implementation, which sets the attributes.
                init = self._segment(path, child)
        pieces.append(text[at : span.end])
        body = "".join(pieces)
        node = header
        if len(body) <= _CLASS_CHARS:
            line_start = max(text.rfind("\n", 0, span.start), text.rfind("\r", 0, span.start)) + 1
            parsed = _parse_definitions(body, text[line_start : span.start])
            if parsed and isinstance(parsed[0], ast.ClassDef):
                node = parsed[0]
        bases = [d for d in (_dotted(_unsubscripted(b)) for b in node.bases) if d is not None]
        return _Class(path, qualname, node, init, bases)

    def _children_of(self, path: str) -> dict[str, list[tuple[str, Span]]]:
        """Each definition's direct children in the file at `path`, by start: parent -> (name, span)."""
        children = self._children.get(path)
        if children is None:
            children = {}
            for qualname, spans in self.index.definitions(path).items():
                parent, _, name = qualname.rpartition(".")
                if parent:
                    children.setdefault(parent, []).extend((name, span) for span in spans)
            for listed in children.values():
                listed.sort(key=lambda item: item[1].start)
            self._children[path] = children
        return children


# -- the function's own source -----------------------------------------------------------------------


def _own_qualname(index: SnapshotIndex, found: FoundFunction) -> str:
    """`found`'s dotted name inside its file (`Cart.total`): the longest definition whose name
    ends its qualified name and that starts on its line."""
    best = ""
    for qualname, spans in index.definitions(found.path).items():
        if (
            len(qualname) > len(best)
            and (found.qualified_name == qualname or found.qualified_name.endswith("." + qualname))
            and spans[0].start_line == found.start_line
        ):
            best = qualname
    return best


def _dedent(source: str, indent: str) -> str:
    """`source` (its first line at its `def`/`class`, the later ones indented as in the file) as a
    module of its own, with `\\n` line ends."""
    if "\r" in source:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
    if indent:
        source = source.replace("\n" + indent, "\n")
    return source


def _parse_definitions(source: str, indent: str) -> list[_Def]:
    """The defs and classes of `source` (one, or several: overloads, getter and setter); empty
    when it does not parse."""
    try:
        tree = ast.parse(_dedent(source, indent))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [s for s in tree.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]


def _decorated_with(node: _Def, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in node.decorator_list)


def _bound_names(defs: list[_Def]) -> tuple[set[str], dict[str, tuple[tuple[int, str], str]]]:
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


def _uses(defs: list[_Def], self_names: set[str]) -> list[_Use]:
    """The names the definitions use, each once, in order of first use in the source."""
    local, imports = _bound_names(defs)
    first: dict[_Use, tuple[int, int]] = {}

    def add(use: _Use, node: ast.expr) -> None:
        where = (node.lineno, node.col_offset)
        if use not in first or where < first[use]:
            first[use] = where

    def named(root: str, chain: list[str], node: ast.expr) -> None:
        if root in self_names:
            if chain:
                add(_Use("self", (chain[0],)), node)
        elif root in imports:
            origin, imported = imports[root]
            add(_Use("module", (imported, *chain)[:_MAX_PARTS], origin), node)
        elif root not in local:
            add(_Use("module", (root, *chain)[:_MAX_PARTS]), node)

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
                add(_Use("super", (chain[0],)), node)
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


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _unsubscripted(node: ast.expr) -> ast.expr:
    """`Generic[T]` -> `Generic`: the class a subscripted base names."""
    return node.value if isinstance(node, ast.Subscript) else node


# -- headers, read without reading the body -----------------------------------------------------------


class _Reader:
    """`readline` over a text for the tokenizer, remembering where each line starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.starts: list[int] = []

    def readline(self) -> str:
        if self.at >= len(self.text):
            return ""
        end = self.text.find("\n", self.at)
        end = len(self.text) if end < 0 else end + 1
        self.starts.append(self.at)
        line = self.text[self.at : end]
        self.at = end
        return line

    def offset(self, position: tuple[int, int]) -> int:
        row, column = position
        return self.starts[row - 1] + column


def _tokens(reader: _Reader) -> Iterator[tokenize.TokenInfo]:
    """The tokens of the text, stopping quietly where it stops being Python."""
    try:
        yield from tokenize.generate_tokens(reader.readline)
    except (tokenize.TokenError, SyntaxError):
        return


def _header(text: str) -> _Def | None:
    """The def or class that starts `text` (dedented, decorators first), parsed from its header and
    docstring only, its body reduced to the docstring or `...`: a long body is not even tokenized.
    None if it is not a definition or does not parse."""
    reader = _Reader(text)
    tokens = _tokens(reader)
    depth = 0
    keyword = False
    colon: int | None = None
    for token in tokens:
        if token.type == tokenize.OP and token.string in {"(", "[", "{"}:
            depth += 1
        elif token.type == tokenize.OP and token.string in {")", "]", "}"}:
            depth -= 1
        elif token.type == tokenize.NAME and depth == 0 and token.string in {"def", "class"}:
            keyword = True
        elif token.type == tokenize.OP and token.string == ":" and depth == 0 and keyword:
            colon = reader.offset(token.end)
            break
    if colon is None:
        return None
    doc = _docstring_statement(tokens, reader)
    source = text[:colon] + (f"\n    {text[doc[0] : doc[1]]}" if doc is not None else " ...")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else None


def _docstring_statement(tokens: Iterator[tokenize.TokenInfo], reader: _Reader) -> tuple[int, int] | None:
    """Where the docstring statement after a header's colon is in the text, if the body has one."""
    token = next(tokens, None)
    if token is None or token.type != tokenize.NEWLINE:
        return None  # a body on the header's line: no docstring worth showing
    start: int | None = None
    for token in tokens:
        if token.type in {tokenize.NL, tokenize.COMMENT, tokenize.INDENT}:
            continue
        if token.type == tokenize.STRING:
            if start is None:
                start = reader.offset(token.start)
            continue
        if token.type == tokenize.NEWLINE and start is not None:
            return start, reader.offset(token.start)
        return None
    return None


# -- rendering ---------------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


def _doc_line(text: str) -> str:
    """A docstring's text as one quoted line of Python."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    return f'"""{text}"""'


def _signature(node: _Def) -> str:
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


def _class_assigned(node: ast.ClassDef) -> dict[str, ast.stmt]:
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


def _class_text(cls: _Class, *, reads: set[str], init: str | None) -> str:
    """A class as its header, docstring's first paragraph, annotated attributes (and the plain ones of
    `reads`), and `__init__`: with `init` _SIGNATURE its signature, with _ATTRIBUTES also what it
    sets on self, with None nothing."""
    node = cls.node
    doc = ast.get_docstring(node)
    members: list[str] = []
    for name, statement in _class_assigned(node).items():
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
    header = _header(cls.init) if cls.init is not None and init is not None else None
    if isinstance(header, ast.FunctionDef | ast.AsyncFunctionDef):
        positional = [*header.args.posonlyargs, *header.args.args]
        self_name = positional[0].arg if positional else "self"
        header.decorator_list = []
        signature = _signature(header).split("\n", 1)[0]
        attributes = _self_attributes(cls.init or "", self_name) if init == _ATTRIBUTES else []
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


def _constant(text: str, name: str) -> str | None:
    """`NAME = value` (value cut) for the first assignment of `name` at the top level of `text`
    (at the start of a line); None if there is none."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    match = re.search(rf"^{re.escape(name)}[ \t]*(?::|=(?!=))", text, re.MULTILINE)
    if match is None:
        return None
    start = match.start()
    piece = text[start : start + _STATEMENT_CHARS]
    reader = _Reader(piece)
    end: int | None = None
    for token in _tokens(reader):
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


def _fit(blocks: list[str], max_chars: int) -> str:
    """The blocks, one per line, as many whole ones from the first as fit in `max_chars`."""
    kept: list[str] = []
    size = 0
    for block in blocks:
        cost = len(block) + (1 if kept else 0)
        if size + cost > max_chars:
            break
        kept.append(block)
        size += cost
    return "\n".join(kept)
