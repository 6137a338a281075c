"""Python source files as they are in the wild: bytes to text, lines, and exact text segments.

Decoding follows PEP 263 and the interpreter: a UTF-8 BOM, an encoding cookie on line 1 or 2,
otherwise UTF-8. Lines split only where the tokenizer splits them (CRLF, CR, LF; never on form
feed or the other characters `str.splitlines` knows), so line numbers agree with `ast`.
"""

from __future__ import annotations

import io
import re
import tokenize

# The line ends the tokenizer knows; `str.splitlines` would also split on \f, \v, \x1c.. and
# \u2028, which would shift every line number after them.
_LINE_END = re.compile(r"\r\n|\r|\n")


class SourceDecodeError(ValueError):
    """The bytes are not text in the encoding the file declares (or UTF-8 when it declares none)."""


def decode_source(data: bytes) -> str:
    """The text of a Python source file, decoded as the interpreter would decode it.

    The BOM is dropped; line ends are kept as they are (CRLF stays CRLF).
    Raises SourceDecodeError for an unknown or contradictory encoding cookie, or bytes that are
    not valid in the file's encoding (for example a Python 2 file with Latin-1 text and no cookie).
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        raise SourceDecodeError(str(error.msg)) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SourceDecodeError(f"line {line} is not valid {encoding}: {error.reason}") from None


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their line ends, split where Python's tokenizer splits them."""
    lines: list[str] = []
    start = 0
    for match in _LINE_END.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def _cut(line: str, byte_offset: int) -> int:
    """The character index of a UTF-8 byte offset into `line` (ast columns are UTF-8 bytes)."""
    if line.isascii():
        return byte_offset
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="replace"))


def segment(lines: list[str], start_line: int, start_col: int, end_line: int, end_col: int) -> str:
    """The exact text from (start_line, start_col) to (end_line, end_col), as `ast` positions say.

    Lines are 1-based, columns are UTF-8 byte offsets; the same text `ast.get_source_segment`
    gives for a node with these positions.
    """
    first = lines[start_line - 1]
    if start_line == end_line:
        return first[_cut(first, start_col) : _cut(first, end_col)]
    last = lines[end_line - 1]
    return "".join(
        [first[_cut(first, start_col) :], *lines[start_line : end_line - 1], last[: _cut(last, end_col)]]
    )
