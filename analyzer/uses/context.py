"""`uses_of`: what a reviewed function uses, found through the snapshot's index and shown."""

from __future__ import annotations

import ast
import logging
import re
from dataclasses import dataclass

from analyzer.locate import FoundFunction, SnapshotIndex
from analyzer.locate.tables import Span, collector_paused, dotted
from analyzer.uses.headers import definition_header
from analyzer.uses.names import (
    Definition,
    Use,
    decorated_with,
    dedent,
    parse_definitions,
    unsubscripted,
    used_names,
)
from analyzer.uses.render import (
    ATTRIBUTES,
    SIGNATURE,
    ClassSummary,
    class_assigned,
    render_class,
    render_constant,
    render_signature,
)
from review_contract import MAX_CONTEXT_CHARS

logger = logging.getLogger("analyzer.uses")

# Entries (a class, a function, a constant) in one text: the model needs the few it calls most.
MAX_ENTRIES = 30
# Distinct names of the function looked up; a function that names more is huge and generated.
MAX_NAMES = 150
# The reviewed function is parsed whole, in this process: longer than this (20 ms of parsing, and
# far more than is reviewed), it is not looked into at all.
MAX_SOURCE_CHARS = 100_000
# How far up the bases `self.method` and `super().method` are looked for.
MAX_BASE_DEPTH = 4
# One entry longer than this (a signature with a page of annotations) is left out, not cut.
MAX_ENTRY_CHARS = 2_000
# A class is parsed with its methods cut out: longer than that, it is shown from its header only.
_CLASS_CHARS = 100_000
# An all-capitals name, the convention for a module constant.
_CONSTANT = re.compile(r"_*[A-Z][A-Z0-9_]*\Z")
_CALLEE, _CONSTANT_KIND = 0, 1


@dataclass(slots=True)
class _Entry:
    path: str
    rank: tuple[int, int]
    text: str


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
    defs = parse_definitions(found.source, found.indent)
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

    def __init__(self, index: SnapshotIndex, found: FoundFunction, defs: list[Definition]) -> None:
        self.index = index
        self.found = found
        self.defs = defs
        self._texts: dict[str, str | None] = {}
        self._children: dict[str, dict[str, list[tuple[str, Span]]]] = {}
        self._classes: dict[tuple[str, str], ClassSummary | None] = {}
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.qualname = _own_qualname(index, found)
        self.own: ClassSummary | None = None
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
            if positional and not decorated_with(first, "staticmethod"):
                self_names.add(positional[0].arg)
        for order, use in enumerate(used_names(self.defs, self_names)[:MAX_NAMES]):
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

    def _module_use(self, use: Use, order: int) -> None:
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

    def _member_use(self, use: Use, order: int) -> None:
        """`self.name` / `super().name`: a method or property of the class or its bases, else an
        attribute (shown with the own class when the class itself assigns it)."""
        own = self.own
        if own is None:
            return
        name = use.parts[0]
        seen = {(own.path, own.qualname)}
        level = [own] if use.via == "self" else self._bases(own, seen)
        for _ in range(MAX_BASE_DEPTH + 1):
            following: list[ClassSummary] = []
            for cls in level:
                reached = self.index.reach(cls.path, f"{cls.qualname}.{name}")
                if reached.definition is not None:
                    self._add_definition(reached.definition.path, reached.qualname, order)
                    return
                if cls is own and name in class_assigned(cls.node):
                    self.own_reads.add(name)
                    return
                following.extend(self._bases(cls, seen))
            level = following
            if not level:
                return

    def _bases(self, cls: ClassSummary, seen: set[tuple[str, str]]) -> list[ClassSummary]:
        found: list[ClassSummary] = []
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
            text = render_class(cls, reads=set(), init=SIGNATURE)
        else:
            headers = [self._definition_header(path, span) for span in spans[:4]]
            shown = [render_signature(h) for h in headers if h is not None]
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
        shown = render_constant(text, name) if text is not None else None
        if shown is None:
            return False
        self.entries[key] = _Entry(path, (_CONSTANT_KIND, order), shown)
        return True

    def _own_class_text(self, own: ClassSummary) -> str | None:
        # An `__init__` under review is not shown again.
        init = None if self.qualname == f"{own.qualname}.__init__" else ATTRIBUTES
        text = render_class(own, reads=self.own_reads, init=init)
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
        return dedent(text[span.start : span.end], text[line_start : span.start])

    def _definition_header(self, path: str, span: Span) -> Definition | None:
        segment = self._segment(path, span)
        return definition_header(segment) if segment is not None else None

    def _class_named(self, path: str, dotted: str) -> ClassSummary | None:
        reached = self.index.reach(path, dotted)
        if reached.definition is None:
            return None
        return self._class(reached.definition.path, reached.qualname)

    def _class(self, path: str, qualname: str) -> ClassSummary | None:
        """The class `qualname` of the file at `path` (its first definition), or None if that is
        not a class."""
        key = (path, qualname)
        if key not in self._classes:
            self._classes[key] = self._read_class(path, qualname)
        return self._classes[key]

    def _read_class(self, path: str, qualname: str) -> ClassSummary | None:
        spans = self.index.definitions(path).get(qualname)
        text = self._text(path)
        if not spans or text is None:
            return None
        span = spans[0]
        segment = self._segment(path, span)
        header = definition_header(segment) if segment is not None else None
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
            parsed = parse_definitions(body, text[line_start : span.start])
            if parsed and isinstance(parsed[0], ast.ClassDef):
                node = parsed[0]
        bases = [d for d in (dotted(unsubscripted(b)) for b in node.bases) if d is not None]
        return ClassSummary(path, qualname, node, init, bases)

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
