"""Text from outside made safe for a terminal or a log file: no control or bidi character reaches either raw.

Repository paths, function names, request paths and a model's words are written to terminals and
log lines. Raw, an ESC starts a terminal escape sequence (colours, cursor moves, a window title),
CR or LF starts a forged line, U+009B is the one-byte form of ESC [ that some terminals obey, and
the bidi controls reorder what a person reads (U+202E shows `gpj.exe` as `exe.jpg`). Every sink
escapes them the same way, with this module:

- `printable(text)` for plain text (the text log format, the command line's output): each such
  character becomes a visible escape as Python writes it (`\\n`, `\\x1b`, `\\x9b`, `\\u202e`);
  everything else, accents and CJK included, is left as it is. Backslashes are not doubled, so
  an ordinary line comes out unchanged.
- `json_printable(line)` for a rendered JSON document: the same characters as JSON `\\u`
  escapes, so the decoded value is exactly the original and no reader of the raw line meets them
  (JSON itself escapes only U+0000-U+001F).
"""

from __future__ import annotations

import re

# C0 (U+0000-U+001F), DEL, C1 (U+0080-U+009F, U+009B the 8-bit CSI among them); the bidi
# embeddings, overrides and isolates, the marks LRM, RLM and ALM; and the Unicode line and
# paragraph separators, which some viewers break lines on.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Of these, only what JSON's own escaping leaves raw (it escapes U+0000-U+001F itself).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str) -> str:
    """`text` with every control and bidi character written as a visible escape (`\\x1b`, `\\u202e`).

    Text without such characters is returned as it is (the same object). Never raises.
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)


def json_printable(line: str) -> str:
    """A rendered JSON document (`json.dumps(..., ensure_ascii=False)`) with the control and bidi
    characters JSON leaves raw written as `\\uXXXX` escapes: it decodes to the same value.

    Only valid for JSON text: these characters can occur only inside its strings, where a `\\u`
    escape means the character itself. Never raises.
    """
    # Most lines are ASCII, where only DEL can be one of them: checked far faster than by the regex.
    if (line.isascii() and "\x7f" not in line) or _UNSAFE_IN_JSON.search(line) is None:
        return line
    return _UNSAFE_IN_JSON.sub(_json_escape, line)
