"""Which of ty's diagnostics the review keeps: bugs in one function, said with certainty.

A review is switched off by its false findings, so this keeps much less than ty says. ty is asked
for the rules in RULES only (`--ignore all`: the others never leave its process), and of what it
reports a diagnostic is dropped where ty is often wrong on clean code:

- any on a line that already silences a type checker (`# type: ignore[...]`, `# pyright: ignore`,
  `# ty: ignore`): its author has looked and decided (ty 1.0 honours only its own codes);
- an undefined name in a module that makes names at run time (`globals()`, `vars()`, `exec`,
  enum `_convert_`, `import *`) or catches NameError (CPython's `re`, `ssl`, `signal`, `socket`,
  `plistlib`, `turtle`, `http.client` do), or a Python 2 / Windows-only builtin (`unicode`,
  `WindowsError`), which such code guards itself;
- a call found wrong against a callee the snapshot does not define (a typeshed stub: stubs omit
  keywords that the real function takes, e.g. tkinter's `showerror(master=...)`), against
  `object.__init__` (a class whose `__init__` a decorator writes, as attrs does for its own
  classes), or against a callable with no name (a `Callable[...]` attribute);
- an attribute missing on a union other than `X | None` (`list[str] | str` after a check ty cannot
  follow), on `Unknown | None` (an import that did not resolve) or `<module> | None` (an optional
  dependency: `try: import brotli except ImportError: brotli = None`); on a None that is not a
  name or a call's result but an attribute (`self._sock.close()`, `proc.stdout.read()`: state
  the object's life cycle sets, which a reviewer would not flag); and on a union ty inferred from
  a None assigned first (`None | Canvas`: `x = None` at start, set before use) rather than one
  declared optional (`User | None`, `Match[str] | None`: ty puts None last).

Left out entirely: `possibly-unresolved-reference` (off by default in ty; on CPython's Lib/ it
said 189 things, nearly all names bound on every path that matters), `not-callable` (16 on Lib/,
all class attributes that default to None and are set before use; `object` after hasattr in
httpx), `missing-attribute`, `invalid-argument-type` and the rest (protocols, decorators and
`hasattr` that ty does not follow: 20 and 34 on the libraries below).

Measured on httpx, click, attrs, litestar and msgspec (79k lines, as a snapshot each, their
third-party imports unresolved): ty's default rules said 622 things, the rules asked here 73, and the
filters keep none of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import msgspec

from review_contract import TypeFinding

# Asked of ty (`--ignore all`, then `--error` for each).
RULES: tuple[str, ...] = (
    "unresolved-reference",
    "missing-argument",
    "unknown-argument",
    "too-many-positional-arguments",
    "parameter-already-assigned",
    "positional-only-parameter-as-kwarg",
    "missing-union-attribute",
)
_CALL_RULES = frozenset(
    {
        "missing-argument",
        "unknown-argument",
        "too-many-positional-arguments",
        "parameter-already-assigned",
        "positional-only-parameter-as-kwarg",
    }
)

MAX_MESSAGE_CHARS = 2_000

_SILENCED = re.compile(rb"#\s*(?:type|pyright|ty|mypy)\s*:\s*ignore|#\s*pyre-(?:ignore|fixme)")
_DYNAMIC_NAMES = re.compile(
    rb"\b(?:globals|vars|locals)\s*\(\s*\)|\bexec\s*\(|\b_convert_\s*\(|\bimport\s+\*|\bNameError\b|__builtins__|\bglobal_enum\b"
)
_NAME = re.compile(r"^Name `([^`]+)` used when not defined")
# Builtins of Python 2 or of Windows only: code that names them checks for them first.
_GUARDED_BUILTINS = frozenset({
    "unicode", "basestring", "long", "xrange", "unichr", "raw_input", "file", "reduce", "execfile",
    "cmp", "buffer", "apply", "intern", "coerce", "reload", "WindowsError",
})  # fmt: skip
# The callee: "of function `f`", "to bound method `A.f`", "of constructor `A`", "of class `A`".
_CALLEE = re.compile(r"\b(?:of|to) (?:function|bound method|constructor|class) `([^`]+)`")
_DEFINED = re.compile(rb"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)", re.MULTILINE)
_NONE_IN_UNION = re.compile(r"^Attribute `([^`]+)` is not defined on `None` in union `(.*)`$")
_NAME_AT = re.compile(r"[A-Za-z_]\w*")
_DOTTED_CALL_AT = re.compile(r"[A-Za-z_][\w.]*\s*\(")
# ANSI escape sequences first (whole), then any other control character.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f]")


class _Begin(msgspec.Struct):
    line: int
    column: int = 1


class _Positions(msgspec.Struct):
    begin: _Begin


class _Location(msgspec.Struct):
    path: str
    positions: _Positions | None = None


class Diagnostic(msgspec.Struct):
    """One entry of ty's `--output-format gitlab` (GitLab Code Quality), the fields read here."""

    check_name: str
    description: str
    location: _Location


DIAGNOSTICS = msgspec.json.Decoder(list[Diagnostic])


def one_line(text: str) -> str:
    """The first line of `text`, without control characters or ANSI codes, at most MAX_MESSAGE_CHARS."""
    lines = text.strip().splitlines()
    return _CONTROL.sub("", lines[0] if lines else "").strip()[:MAX_MESSAGE_CHARS]


def message_of(diagnostic: Diagnostic) -> str:
    """ty's message without its `rule: ` prefix, as `one_line` makes it."""
    text = diagnostic.description
    prefix = diagnostic.check_name + ": "
    return one_line(text[len(prefix) :] if text.startswith(prefix) else text)


def makes_names(module: bytes) -> bool:
    """Whether a module may define names at run time, where no checker sees them."""
    return bool(_DYNAMIC_NAMES.search(module))


def defined_names(files: Iterable[bytes]) -> frozenset[str]:
    """The names of the functions and classes that `files` define (any nesting)."""
    return frozenset(name.decode("ascii", "replace") for data in files for name in _DEFINED.findall(data))


def _none_is_a_value(line: str, column: int, attribute: str) -> bool:
    """Whether the expression at `column` (1-based) reads `attribute` from a plain name or
    straight from a call's result (`user.name`, `find(x).name`), not from an attribute."""
    text = line[column - 1 :]
    name = _NAME_AT.match(text)
    if name is None:
        return False
    if name[0] not in ("self", "cls") and re.match(rf"\s*\.\s*{re.escape(attribute)}\b", text[name.end() :]):
        return True
    call = _DOTTED_CALL_AT.match(text)
    if call is None:
        return False
    depth = 0
    for index in range(call.end() - 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return bool(re.match(rf"\s*\.\s*{re.escape(attribute)}\b", text[index + 1 :]))
    return False  # the call goes on over more lines


def kept(
    rule: str, message: str, line: str, column: int, *, dynamic_names: bool, defined: frozenset[str]
) -> bool:
    """Whether a diagnostic of `rule` saying `message` at `column` of `line` is a finding.

    `dynamic_names`: the module may define names at run time (`makes_names`); `defined`: the
    names of the snapshot's functions and classes (`defined_names`).
    """
    if rule not in RULES or _SILENCED.search(line.encode("utf-8", "surrogateescape")):
        return False
    if rule == "unresolved-reference":
        name = _NAME.match(message)
        return name is not None and name[1] not in _GUARDED_BUILTINS and not dynamic_names
    if rule in _CALL_RULES:
        callee = _CALLEE.search(message)
        return (
            callee is not None
            and callee[1] != "object.__init__"
            and all(part in defined for part in callee[1].split("."))
        )
    if rule == "missing-union-attribute":
        union = _NONE_IN_UNION.match(message)
        return (
            union is not None
            and union[2].endswith(" | None")
            and not re.search(r"\bUnknown\b|<module ", union[2])
            and _none_is_a_value(line, column, union[1])
        )
    return False


class Judge:
    """Keeps the findings among a snapshot's diagnostics; what it learns of the files (their lines,
    the names they define) is kept for the next batch of the same snapshot."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = files
        self._lines: dict[str, list[str]] = {}
        self._dynamic: dict[str, bool] = {}
        self._defined: frozenset[str] | None = None

    def findings(self, diagnostics: Iterable[Diagnostic]) -> dict[str, list[TypeFinding]]:
        """The kept diagnostics as findings per snapshot path, in ty's order.

        A diagnostic about a path not in the snapshot (ty's `io` errors have none) is dropped.
        """
        found: dict[str, list[TypeFinding]] = {}
        for diagnostic in diagnostics:
            path = diagnostic.location.path
            positions = diagnostic.location.positions
            module = self._files.get(path)
            if module is None or positions is None or positions.begin.line < 1:
                continue
            if path not in self._lines:
                self._lines[path] = module.decode("utf-8", "surrogateescape").splitlines()
                self._dynamic[path] = makes_names(module)
            if self._defined is None and diagnostic.check_name in _CALL_RULES:
                self._defined = defined_names(self._files.values())
            lines = self._lines[path]
            number = positions.begin.line
            line = lines[number - 1] if number <= len(lines) else ""
            column = max(1, positions.begin.column)
            message = message_of(diagnostic)
            dynamic = self._dynamic[path]
            if kept(
                diagnostic.check_name,
                message,
                line,
                column,
                dynamic_names=dynamic,
                defined=self._defined or frozenset(),
            ):
                found.setdefault(path, []).append(
                    TypeFinding(rule=diagnostic.check_name, message=message, line=number, column=column)
                )
        return found
