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
LINE_END = re.compile(r"\r\n|\r|\n")


class SourceDecodeError(ValueError):
    """The bytes are not text in the encoding the file declares (or UTF-8 when it declares none)."""


def decode_source(data: bytes) -> str:
    """The text of a Python source file, decoded as the interpreter would decode it.

    The BOM is dropped; line ends are kept as they are (CRLF stays CRLF).
    Raises SourceDecodeError, and nothing else, for an unknown or contradictory encoding cookie, a
    codec that is not a text encoding (`rot13`), or bytes that are not valid in the file's
    encoding (for example a Python 2 file with Latin-1 text and no cookie).
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
    # A cookie may name any codec the interpreter knows, not only text encodings: `rot13` or
    # `base64` (LookupError: not a text encoding), `punycode` or `undefined` (a bare UnicodeError).
    # The interpreter refuses such a file; so does this, as that file's error and no one else's.
    except (LookupError, UnicodeError) as error:
        raise SourceDecodeError(f"the declared encoding {encoding!r} cannot decode it: {error}") from None


class Lines:
    """Where each line of a text starts, split where Python's tokenizer splits lines.

    Turns `ast` positions (1-based line, UTF-8 byte column) into offsets into the text, so a
    definition's exact text is one slice, and nothing but a few integers per definition is kept.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self.starts = [0, *(match.end() for match in LINE_END.finditer(text))]

    def line(self, number: int) -> str:
        """Line `number` (1-based) with its line end."""
        end = self.starts[number] if number < len(self.starts) else len(self.text)
        return self.text[self.starts[number - 1] : end]

    def offset(self, number: int, byte_column: int) -> int:
        """The offset into the text of line `number`, UTF-8 byte column `byte_column`."""
        if self.ascii:
            return self.starts[number - 1] + byte_column
        line = self.line(number)
        if line.isascii():
            return self.starts[number - 1] + byte_column
        prefix = line.encode("utf-8")[:byte_column].decode("utf-8", errors="replace")
        return self.starts[number - 1] + len(prefix)
