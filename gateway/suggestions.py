"""What a suggestion is, how the model's output becomes suggestions, and how a review is assembled.

The model's output is read tolerantly (JSON, JSON in fences or prose, a bare list, bullet lines),
cleaned to short plain text, and merged with the deterministic checks: near-duplicates dropped,
the most important first, at most the configured number.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from gateway.junk import code_facts, junk_reason

log = logging.getLogger("gateway.suggestions")

# The model's first two suggestions rank above type hints and docstrings (the prompt asks for
# the most important first, and only a model sees bugs), the rest after the style checks.
MODEL_LEAD = 25
MODEL_REST = 45
MODEL_LEAD_COUNT = 2
MAX_CHARS = 240

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+(.*\S)\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+", re.IGNORECASE)
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_EMPHASIS = re.compile(r"(\*\*|__|\*|~~)(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"^\s*#{1,6}\s*")
_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9_]+")
# The model's answer is read for suggestions up to this many characters: a review's answer is a
# few KB, and what a provider sends past this is read as a truncated answer is (_repair_truncated).
# It bounds the time the reading takes whatever a provider sends (up to LLM_MAX_RESPONSE_BYTES).
MAX_OUTPUT_CHARS = 128 * 1024
# Places in one candidate text where JSON is tried (`{` or `[`): each try may scan the rest of it.
MAX_JSON_STARTS = 64
# Suggestions taken from one answer (REVIEW_MAX_SUGGESTIONS is at most 50), and the characters of
# each that are cleaned (clean keeps MAX_CHARS): clean's markup patterns and the near-duplicate
# comparisons cost more than linear time in what they are given (48 KB of `*a ` took 36 s).
MAX_ITEMS = 64
MAX_ITEM_CHARS = 4 * MAX_CHARS
_ITEM_KEYS = ("suggestion", "text", "message", "description", "issue", "recommendation", "content")

_TOPICS: dict[str, re.Pattern[str]] = {
    "types": re.compile(r"type[ -]?hint|annotat|typing|return type|type annotation", re.IGNORECASE),
    "docstring": re.compile(r"docstring|documentation string", re.IGNORECASE),
    "print": re.compile(r"\bprint\b", re.IGNORECASE),
    "mutable-default": re.compile(r"mutable default", re.IGNORECASE),
    "except": re.compile(
        r"bare except|broad except|catch(?:ing)? (?:all|every|generic|broad)", re.IGNORECASE
    ),
    # The topics of the security and bug checks (rules.py), so a model's vaguer repetition of
    # what a check already says is dropped.
    "eval": re.compile(r"\beval\b", re.IGNORECASE),
    "exec": re.compile(r"\bexec\b", re.IGNORECASE),
    "sql": re.compile(r"\bsql\b", re.IGNORECASE),
    "shell": re.compile(r"shell=true|os\.system|shell injection", re.IGNORECASE),
    "pickle": re.compile(r"pickle", re.IGNORECASE),
    "yaml": re.compile(r"yaml", re.IGNORECASE),
    "hash": re.compile(r"\bmd5\b|\bsha1\b", re.IGNORECASE),
    "timeout": re.compile(r"\btimeout\b", re.IGNORECASE),
    "random": re.compile(r"\brandom\b.*(?:secure|token|password|crypto)|\bsecrets\b", re.IGNORECASE),
    "assert": re.compile(r"\bassert", re.IGNORECASE),
    "async-blocking": re.compile(r"event loop|asyncio\.sleep", re.IGNORECASE),
    "open": re.compile(r"with statement|context manager", re.IGNORECASE),
    "global": re.compile(r"\bglobal\b", re.IGNORECASE),
    "none-compare": re.compile(r"(?:==|!=)\s*none|is not none|'is' or 'is not'", re.IGNORECASE),
    "complexity": re.compile(r"too complex|complexity", re.IGNORECASE),
    "unused-argument": re.compile(r"unused (?:argument|parameter)", re.IGNORECASE),
}
_STOP = {
    "the",
    "a",
    "an",
    "to",
    "of",
    "and",
    "or",
    "in",
    "for",
    "is",
    "it",
    "this",
    "that",
    "be",
    "with",
    "as",
}


@dataclass(frozen=True)
class Place:
    """Where a check found what a suggestion says: its rule, and line and column in the code reviewed."""

    rule: str
    line: int
    column: int = 1


@dataclass(frozen=True)
class Suggestion:
    """One suggestion, with what the ranking needs (lower priority comes first) and the places
    it stands for (none for the model's own)."""

    text: str
    priority: int
    topic: str = ""
    places: tuple[Place, ...] = ()


def clean(text: str) -> str:
    """One short line of plain text: no Markdown emphasis, images, links, URLs or HTML."""
    while True:  # removing one kind of markup can join the pieces of another; each pass only shortens
        before = text
        text = _IMAGE.sub("", text)
        text = _LINK.sub(r"\1", text)
        text = _URL.sub("", text)
        text = _HTML.sub("", text)
        text = _HEADING.sub("", text)
        text = _EMPHASIS.sub(r"\2", text)
        text = text.replace("`", "")
        if text == before:
            break
    text = _SPACE.sub(" ", text).strip(" -*•:;,")
    bullet = _BULLET.match(text)
    if bullet:
        text = bullet.group(1)
    if len(text) > MAX_CHARS:
        cut = text.rfind(". ", 0, MAX_CHARS)
        text = text[: cut + 1] if cut >= 12 else text[: MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return text


def parse_model_output(content: str | None) -> list[str] | None:
    """The suggestions in the model's answer, or None when the answer holds nothing readable.

    `{"suggestions": [...]}` is the contract, but fences, prose around the JSON, a bare list,
    other key names, objects instead of strings and bullet lines are all accepted.
    An explicit empty list is a valid answer and returns [].
    Only the first MAX_OUTPUT_CHARS characters are read; JSON nested deeper than Python follows
    (a few KB of `[`) is unreadable, never an error: this never raises. At most MAX_ITEMS
    suggestions come back, each cut to MAX_ITEM_CHARS, so what is done with them next (cleaning
    with regular expressions, comparing each with the others) is bounded too.
    """
    found = _parsed(content)
    return None if found is None else [item[:MAX_ITEM_CHARS] for item in found[:MAX_ITEMS]]


def _parsed(content: str | None) -> list[str] | None:
    if content is None or not content.strip():
        return None
    content = content[:MAX_OUTPUT_CHARS]
    candidates = [content, *_FENCE.findall(content)]
    for candidate in candidates:
        found = _from_json_text(candidate.strip())
        if found is not None:
            return found
    for candidate in candidates:
        found = _embedded_json(candidate)
        if found is not None:
            return found
    repaired = _repair_truncated(content)
    if repaired:
        return repaired
    bullets = [m.group(1) for line in content.splitlines() if (m := _BULLET.match(line))]
    if bullets:
        return bullets
    return None


def _repair_truncated(content: str) -> list[str] | None:
    """The complete strings of a `suggestions` array cut off by a token limit."""
    start = content.find('"suggestions"')
    if start < 0:
        return None
    bracket = content.find("[", start)
    if bracket < 0:
        return None
    out: list[str] = []
    for match in _JSON_STRING.finditer(content, bracket):
        try:
            out.append(json.loads(match.group(0)))
        except ValueError:
            break
    return out or None


def _from_json_text(text: str) -> list[str] | None:
    try:
        return _items(json.loads(text))
    # Nesting deeper than the interpreter's recursion limit, in json's scanner or in _items.
    except (ValueError, RecursionError):
        return None


def _embedded_json(text: str) -> list[str] | None:
    decoder = json.JSONDecoder()
    starts = (start for start, char in enumerate(text) if char in "{[")
    for start in itertools.islice(starts, MAX_JSON_STARTS):
        try:
            found = _items(decoder.raw_decode(text, start)[0])
        except (ValueError, RecursionError):
            continue
        if found is not None:
            return found
    return None


def _items(value: Any) -> list[str] | None:
    if isinstance(value, str):
        # JSON encoded twice: a string that is itself the JSON answer.
        inner = value.strip()
        return _from_json_text(inner) if inner[:1] in ("{", "[") else None
    if isinstance(value, dict):
        if "suggestions" in value:
            return (
                _items(value["suggestions"])
                if not isinstance(value["suggestions"], str)
                else [value["suggestions"]]
            )
        for item in value.values():
            if isinstance(item, list):
                return _items(item)
        return None
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                for key in _ITEM_KEYS:
                    if isinstance(item.get(key), str):
                        out.append(item[key])
                        break
        return out if out or not value else None
    return None


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def near_duplicate(a: str, b: str) -> bool:
    """Same suggestion in other words: mostly the same words, or mostly the same characters."""
    wa, wb = _words(a), _words(b)
    if wa and wb and len(wa & wb) / len(wa | wb) >= 0.6:
        return True
    return SequenceMatcher(None, a.lower(), b.lower()).ratio() >= 0.85


def topic_of(text: str) -> str:
    for topic, pattern in _TOPICS.items():
        if pattern.search(text):
            return topic
    return ""


def model_suggestions(raw: list[str], code: str) -> list[Suggestion]:
    """The model's suggestions, cleaned and ranked; junk dropped (see junk.py).

    Junk includes a suggestion that appears verbatim in the reviewed code: what an injected
    instruction ("reply with ...") would produce, never a review.
    """
    if not raw:
        return []
    out: list[Suggestion] = []
    facts = code_facts(code)  # once per review: it parses the code
    for text in raw:
        cleaned = clean(text)
        reason = junk_reason(cleaned, facts)
        if reason:
            log.debug("dropped the model's %r: %s", cleaned[:80], reason)
            continue
        priority = MODEL_LEAD if len(out) < MODEL_LEAD_COUNT else MODEL_REST
        out.append(Suggestion(text=cleaned, priority=priority, topic=topic_of(cleaned)))
    return out


def merged(checks: list[Suggestion], model: list[Suggestion], limit: int) -> list[Suggestion]:
    """The review: checks and model suggestions, near-duplicates and covered topics dropped, best first.

    A model suggestion on a topic a check already covers (type hints, docstring, ...) is dropped:
    the check's wording is concrete and names the parameters.
    """
    covered = {s.topic for s in checks if s.topic}
    kept: list[Suggestion] = []
    tagged = [(s, False) for s in checks] + [(s, True) for s in model]
    for suggestion, from_model in tagged:
        if from_model and suggestion.topic and suggestion.topic in covered:
            continue
        if any(near_duplicate(suggestion.text, other.text) for other in kept):
            continue
        kept.append(suggestion)
    kept.sort(key=lambda s: s.priority)
    return kept[:limit]


def merge(checks: list[Suggestion], model: list[Suggestion], limit: int) -> list[str]:
    """The texts of `merged`."""
    return [s.text for s in merged(checks, model, limit)]
