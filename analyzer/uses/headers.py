"""The header and docstring of a definition, read from its text without reading its body.

A class or a long function is thousands of lines; what is shown of it is its first few. The
tokenizer reads up to the colon of the header and the docstring statement after it, and only
that is parsed.
"""

from __future__ import annotations

import ast
import tokenize
from collections.abc import Iterator

from analyzer.uses.names import Definition


class Reader:
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


def tokens_of(reader: Reader) -> Iterator[tokenize.TokenInfo]:
    """The tokens of the text, stopping quietly where it stops being Python."""
    try:
        yield from tokenize.generate_tokens(reader.readline)
    except (tokenize.TokenError, SyntaxError):
        return


def definition_header(text: str) -> Definition | None:
    """The def or class that starts `text` (dedented, decorators first), parsed from its header and
    docstring only, its body reduced to the docstring or `...`: a long body is not even tokenized.
    None if it is not a definition or does not parse."""
    reader = Reader(text)
    tokens = tokens_of(reader)
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


def _docstring_statement(tokens: Iterator[tokenize.TokenInfo], reader: Reader) -> tuple[int, int] | None:
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
