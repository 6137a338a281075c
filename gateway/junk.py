"""Whether a model's suggestion is an actionable sentence about the reviewed code.

A small model held to a JSON schema fills the strings with whatever comes: an identifier from the
code, the prompt's marker, a fragment of code, a run of digits, a title ("Password Hash"), a
sentence that says nothing ("The function is not a function..."). Such text is dropped; what
stays is a sentence of four words or more that asks for a change or names a problem, and that
does not ask for what the code already has.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_TOKEN = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")
_CODE_START = re.compile(
    r"^\s*(?:def|class|return|import|from|lambda|async def|await|raise|yield|for|while|with|if|elif|"
    r"try|except)\b"
    r"(?!\s+(?:a|an|the|this|each|every)\b)[^.]*[:(=]"
)
_ASSIGNMENT = re.compile(r"^\s*[\w.\[\]]+\s*(?:[-+*/]?=)(?!=)")
_LONG_TOKEN = 40
_MIN_WORDS = 4
_MIN_LETTER_SHARE = 0.6
_MAX_REPEATS = 3

# A suggestion asks for a change (it starts with a verb in the imperative) or names a problem (a
# verdict word); a sentence with neither only describes the code ("The mean of the values.",
# "Returns the total."). Starting words that are not imperatives: articles, pronouns, nouns
# naming the code, and third-person verbs ("Returns", but not "Pass" or "Process").
_DESCRIPTIVE_START = {
    "the", "a", "an", "this", "that", "these", "those", "it", "its", "there", "here", "function",
    "method", "code", "class", "value", "values", "result", "output", "input", "we", "i", "you",
}  # fmt: skip
# Verbs that ask for a change wherever they stand ("Uses a list; convert it to a set.").
_CHANGE = re.compile(
    r"\b(?:add|avoid|use|remove|replace|rename|check|handle|raise|validate|guard|catch|close|"
    r"consider|prefer|split|move|extract|ensure|convert|sort|wrap|await|iterate|simplify|cache|"
    r"escape|sanitize|parameteri[sz]e|reuse|drop|delete|limit)\b",
    re.IGNORECASE,
)
_VERDICT = re.compile(
    r"\b(?:should|must|instead|missing|never|always|fails?|crash\w*|errors?|bugs?|wrong|incorrect|"
    r"may|might|could|can|cannot|will|empty|zero|none|null|leaks?|unsafe|insecure|injection|"
    r"inefficient|slow|quadratic|blocks?|blocking|infinite|forever|overflow|race|unused|"
    r"unreachable|undefined|duplicat\w*|off-by-one|too|not|no)\b",
    re.IGNORECASE,
)
_ASKS_DOCSTRING = re.compile(r"\bdocstring", re.IGNORECASE)
_ASKS_HINTS = re.compile(r"type hints?|annotat|return type", re.IGNORECASE)
_IMPLICIT = {"self", "cls"}
_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class CodeFacts:
    """What the filter needs to know about the reviewed code, worked out once per review."""

    folded: str  # lower case, runs of white space as one space
    documented: bool  # it defines functions, and every function and class has a docstring
    annotated: bool  # it defines functions, and every one has parameter and return types


def code_facts(code: str) -> CodeFacts:
    """The facts of `code`; code that does not parse (or is too deeply nested to) has none."""
    folded = _SPACE.sub(" ", code).lower()
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return CodeFacts(folded, documented=False, annotated=False)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    documented = [n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED)]
    return CodeFacts(
        folded,
        documented=bool(functions) and all(ast.get_docstring(n) for n in documented),
        annotated=bool(functions) and all(_annotated(f) for f in functions),
    )


def junk_reason(text: str, code: CodeFacts) -> str:
    """Why `text` is not an actionable suggestion for the code, or "" when it is one."""
    tokens = _TOKEN.findall(text)
    if len(tokens) <= 1:
        return "a single token (an identifier, a marker, a number)"
    if any(len(token) > _LONG_TOKEN for token in tokens):
        return "a run of characters, not words"
    letters = sum(c.isalpha() for c in text)
    if letters < _MIN_LETTER_SHARE * sum(not c.isspace() for c in text):
        return "mostly symbols or digits"
    words = _WORD.findall(text)
    if len(words) < _MIN_WORDS:
        return "fewer than four words"
    if _CODE_START.match(text) or _ASSIGNMENT.match(text):
        return "a code fragment"
    repeats = Counter(w.lower() for w in words if len(w) > 3).most_common(1)
    if repeats and repeats[0][1] >= _MAX_REPEATS:
        return "a word repeated"
    if _SPACE.sub(" ", text).strip().rstrip(".").lower() in code.folded:
        return "copied from the code"
    if not (_imperative(words[0]) or _CHANGE.search(text) or _VERDICT.search(text)):
        return "no change asked and no problem named"
    if code.documented and _ASKS_DOCSTRING.search(text):
        return "asks for a docstring the code has"
    if code.annotated and _ASKS_HINTS.search(text):
        return "asks for type hints the code has"
    return ""


def _imperative(first: str) -> bool:
    word = first.lower()
    third_person = word.endswith("s") and not word.endswith("ss")
    return word not in _DESCRIPTIVE_START and not third_person


def _annotated(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    if arguments.vararg:
        every.append(arguments.vararg)
    if arguments.kwarg:
        every.append(arguments.kwarg)
    named = [a for a in every if a.arg not in _IMPLICIT]
    return function.returns is not None and all(a.annotation is not None for a in named)
