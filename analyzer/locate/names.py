"""Function names as users type them: checked, split at the dots, and normalized as Python does."""

from __future__ import annotations

import keyword
import re
import unicodedata

from analyzer.locate.errors import MalformedName, shown

# The one limit on a function name's length, for the HTTP API and the lookup alike: a hundred
# dotted parts of ten characters fit.
MAX_NAME_CHARS = 1000
# Deeper than any real package path plus nesting (Python allows 100 levels of indentation).
MAX_NAME_PARTS = 100

# One part of a name: an identifier, or a file stem that is not one (`my-tool`, `2to3`).
_NAME_PART = re.compile(r"[\w-]+")
_LOCALS = "<locals>"


def normalize(part: str) -> str:
    """A name part as Python compares identifiers: NFKC-normalized (`ast` names are already)."""
    return part if part.isascii() else unicodedata.normalize("NFKC", part)


def parse_name(name: str) -> list[str]:
    """The parts of a dotted name, normalized, without `<locals>`; MalformedName if it is not one."""
    if not isinstance(name, str):
        raise MalformedName("the function name must be a string")
    text = name.strip()
    if not text:
        raise MalformedName("the function name is empty")
    if len(text) > MAX_NAME_CHARS:
        raise MalformedName(f"the function name is longer than {MAX_NAME_CHARS} characters")
    parts = text.split(".")
    if len(parts) > MAX_NAME_PARTS:
        raise MalformedName(f"the function name has more than {MAX_NAME_PARTS} dotted parts")
    if any(not part for part in parts):
        raise MalformedName(
            f"{shown(text)} is not a dotted name: it has an empty part (a leading, trailing or double dot)"
        )
    # A __qualname__ pasted from Python ("outer.<locals>.inner") names the same function.
    parts = [part for part in parts if part != _LOCALS]
    for part in parts:
        if not _NAME_PART.fullmatch(part):
            raise MalformedName(
                f"{shown(text)} is not a dotted name like 'package.module.function' or "
                f"'module.Class.method': {shown(part)} is not a name"
            )
    if not parts:
        raise MalformedName(f"{shown(text)} names no function")
    last = normalize(parts[-1])
    if not last.isidentifier() or keyword.iskeyword(last):
        raise MalformedName(f"{shown(text)} is not a function name: {parts[-1]!r} is not a Python identifier")
    return [normalize(part) for part in parts]
