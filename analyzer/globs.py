"""ruff's file patterns (the Rust `globset` crate's syntax, as ruff builds them) as Python regexes.

ruff compiles `per-file-ignores` patterns with `globset::Glob::new`, whose defaults differ from
`fnmatch` and from `PurePath.match`: `*` and `?` also match `/` (no literal separator), `**` is
recursive only as a whole path component (`**/x`, `x/**`, `x/**/y`; anywhere else it is `*`),
`{a,b}` alternates (not nested), `[!a]` and `[^a]` negate a class, and `\\` escapes the next
character. Matching is case-sensitive and covers the whole text.

The regex never backtracks more than linearly in the text for each fixed piece: a pattern is
expanded into variants that hold only fixed-length pieces and `*`, and each `*` before a fixed
piece is an atomic lazy match (`(?>.*?piece)`, as `fnmatch.translate` does), so a pattern with
many stars against a long path cannot take exponential time. The variants are bounded.
"""

from __future__ import annotations

import re
from itertools import product

# A pattern expands into at most this many variants ({a,b} alternates times the forms of each
# recursive `**`): ruff's own patterns have one or two.
MAX_VARIANTS = 64


class GlobError(ValueError):
    """The pattern is not valid globset syntax (ruff refuses it too), or expands past MAX_VARIANTS."""


class _Marker:
    """A token of a pattern that is not a fixed-length piece of regex."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return self.name


_STAR = _Marker("*")
# globset's RecursivePrefix (`**/` first), RecursiveZeroOrMore (`/**/`), RecursiveSuffix (`/**` last).
_PREFIX = _Marker("**/")
_MIDDLE = _Marker("/**/")
_SUFFIX = _Marker("/**")
_Token = str | _Marker

# What each recursive token may stand for, in star-only forms: globset's regexes for them are
# `(?:/?|.*/)`, `(?:/|/.*/)` and `/.*` (`/` alone is `*/` with an empty star).
_FORMS: dict[_Marker, tuple[tuple[_Token, ...], ...]] = {
    _PREFIX: ((), (_STAR, "/")),
    _MIDDLE: (("/",), ("/", _STAR, "/")),
    _SUFFIX: (("/", _STAR),),
}


def compile_glob(pattern: str, max_regex_chars: int | None = None) -> re.Pattern[str]:
    """A regex whose `.match(text)` says whether `pattern` matches the whole of `text`, as ruff's would.

    Raises GlobError for what globset refuses (an unclosed `[` or `{`, nested `{`, a range
    whose ends are reversed, a trailing `\\`), for a pattern of more than MAX_VARIANTS forms, and
    for a regex longer than `max_regex_chars` (checked before compiling it: `re` takes about
    4 us per character of regex to compile).
    """
    variants: list[str] = []
    for expanded in _expand_alternates(pattern):
        for tokens in _expand_recursive(_tokens(expanded)):
            variants.append(_joined(tokens))
            if len(variants) > MAX_VARIANTS:
                raise GlobError(f"more than {MAX_VARIANTS} alternatives")
    source = "(?s:" + "|".join(variants) + ")"
    if max_regex_chars is not None and len(source) > max_regex_chars:
        raise GlobError(
            f"its regex of {len(source)} characters is over the {max_regex_chars} left to compile"
        )
    return re.compile(source)


def _class_end(pattern: str, start: int) -> int:
    """The index after the `]` that closes the class opened at `start`; a `]` first in it is literal."""
    index = start + 1
    if index < len(pattern) and pattern[index] in "!^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    end = pattern.find("]", index)
    if end < 0:
        raise GlobError("unclosed character class")
    return end + 1


def _expand_alternates(pattern: str) -> list[str]:
    """The pattern once for each choice of its `{a,b}` alternates (escapes and classes kept as written)."""
    pieces: list[list[str]] = []  # a product of choices, each piece its list of choices
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            literal.append(pattern[index : index + 2])
            index += 2
        elif char == "[":
            end = _class_end(pattern, index)
            literal.append(pattern[index:end])
            index = end
        elif char == "{":
            pieces.append(["".join(literal)])
            literal = []
            choices, index = _alternates(pattern, index + 1)
            pieces.append(choices)
        else:
            literal.append(char)
            index += 1
    pieces.append(["".join(literal)])
    count = 1
    for choices in pieces:
        count *= len(choices)
        if count > MAX_VARIANTS:
            raise GlobError(f"more than {MAX_VARIANTS} alternatives")
    return ["".join(choice) for choice in product(*pieces)]


def _alternates(pattern: str, index: int) -> tuple[list[str], int]:
    """The choices of the alternates group whose `{` is just before `index`, and the index after its `}`."""
    choices: list[str] = []
    current: list[str] = []
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            current.append(pattern[index : index + 2])
            index += 2
        elif char == "[":
            end = _class_end(pattern, index)
            current.append(pattern[index:end])
            index = end
        elif char == "{":
            raise GlobError("nested alternates")
        elif char == ",":
            choices.append("".join(current))
            current = []
            index += 1
        elif char == "}":
            choices.append("".join(current))
            return choices, index + 1
        else:
            current.append(char)
            index += 1
    raise GlobError("unclosed alternates")


def _class(pattern: str, start: int) -> tuple[str, int]:
    """The regex of the class opened at `start`, and the index after it."""
    end = _class_end(pattern, start)
    body = pattern[start + 1 : end - 1]
    negated = body[:1] in ("!", "^")
    if negated:
        body = body[1:]
    items: list[str] = []
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            low, high = body[index], body[index + 2]
            if low > high:
                raise GlobError(f"invalid range {low}-{high}")
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            index += 3
        else:
            items.append(re.escape(body[index]))
            index += 1
    return "[" + ("^" if negated else "") + "".join(items) + "]", end


def _tokens(pattern: str) -> list[_Token]:
    """The pattern (alternates already expanded) as fixed-length regex pieces and markers."""
    tokens: list[_Token] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 == len(pattern):
                raise GlobError("dangling escape")
            tokens.append(re.escape(pattern[index + 1]))
            index += 2
        elif char == "?":
            tokens.append(".")
            index += 1
        elif char == "[":
            piece, index = _class(pattern, index)
            tokens.append(piece)
        elif char == "*" and pattern.startswith("**", index):
            after = pattern[index + 2 : index + 3]
            ends_component = after in ("", "/")
            if not tokens and ends_component:
                # `**` alone matches everything; `**/` at the start, any folders or none.
                tokens.append(_STAR if after == "" else _PREFIX)
            elif tokens and tokens[-1] in ("/", _PREFIX, _MIDDLE) and ends_component:
                last = tokens.pop()
                tokens.append(_PREFIX if last is _PREFIX else _SUFFIX if after == "" else _MIDDLE)
            else:
                tokens.append(_STAR)
            index += 3 if after == "/" else 2
        elif char == "*":
            tokens.append(_STAR)
            index += 1
        else:
            tokens.append(re.escape(char))
            index += 1
    return tokens


def _expand_recursive(tokens: list[_Token]) -> list[list[_Token]]:
    """The token list once for each form of its recursive markers: only pieces and stars remain."""
    options: list[tuple[tuple[_Token, ...], ...]] = [
        _FORMS[token] if isinstance(token, _Marker) and token in _FORMS else ((token,),) for token in tokens
    ]
    count = 1
    for choices in options:
        count *= len(choices)
        if count > MAX_VARIANTS:
            raise GlobError(f"more than {MAX_VARIANTS} alternatives")
    return [[token for part in choice for token in part] for choice in product(*options)]


def _joined(tokens: list[_Token]) -> str:
    """One variant as regex: pieces up to the first star, then `(?>.*?piece)` per star, `.*piece` last."""
    out: list[str] = []
    index = 0
    while index < len(tokens) and tokens[index] is not _STAR:
        out.append(str(tokens[index]))
        index += 1
    while index < len(tokens):
        while index < len(tokens) and tokens[index] is _STAR:
            index += 1
        fixed: list[str] = []
        while index < len(tokens) and tokens[index] is not _STAR:
            fixed.append(str(tokens[index]))
            index += 1
        if index == len(tokens):
            out.append(".*" + "".join(fixed))
        else:
            # The leftmost place of a fixed-length piece is always as good as any later one, so
            # no backtracking into it is needed: atomic, hence linear.
            out.append("(?>.*?" + "".join(fixed) + ")")
    return "".join(out) + r"\Z"
