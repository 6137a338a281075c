"""One generation, engine-agnostic: max_tokens, stop strings, whole UTF-8 characters, cancellation.

`generate` runs in the worker thread and yields text as soon as it is safe to show: never half a
UTF-8 character, never the start of what might become a stop string. Its last item is a `Finish`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Literal

import msgspec

from model_host.engines import Engine, Sampling
from model_host.metrics import record_generation

logger = logging.getLogger("model_host.generation")


class Generation(msgspec.Struct, kw_only=True, frozen=True):
    """A validated request, ready for the engine."""

    prompt_tokens: list[int]
    max_tokens: int
    stop: list[str]
    sampling: Sampling
    grammar: str | None = None


class Finish(msgspec.Struct, kw_only=True, frozen=True):
    reason: Literal["stop", "length", "cancelled"]
    completion_tokens: int


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def _complete_utf8(data: bytes) -> int:
    """The length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:  # ASCII: nothing unfinished
            return len(data)
        if byte >= 0xC0:  # the lead byte of the last character: is the character whole?
            needed = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2
            return len(data) - back if back < needed else len(data)
    return len(data)


def generate(engine: Engine, job: Generation, cancelled: threading.Event) -> Iterator[str | Finish]:
    """Text pieces, then one Finish. `cancelled` is checked after every token."""
    stops = [stop for stop in job.stop if stop]
    pending = b""  # bytes of an unfinished UTF-8 character
    held = ""  # text that may still turn out to start a stop string
    count = 0
    reason: Literal["stop", "length", "cancelled"] = "stop"
    started = time.perf_counter()
    tokens = engine.token_stream(job.prompt_tokens, job.sampling, job.grammar)
    try:
        for token in tokens:
            count += 1
            pending += engine.piece(token)
            cut = _complete_utf8(pending)
            held += pending[:cut].decode("utf-8", errors="replace")
            pending = pending[cut:]
            if stops:
                found = [index for index in (held.find(stop) for stop in stops) if index != -1]
                if found:
                    held = held[: min(found)]
                    reason = "stop"
                    break
                keep = _held_back(held, stops)
            else:
                keep = 0
            if len(held) > keep:
                yield held[: len(held) - keep]
                held = held[len(held) - keep :]
            if count >= job.max_tokens:
                reason = "length"
                break
            if cancelled.is_set():
                reason = "cancelled"
                break
    finally:
        tokens.close()
        record_generation(len(job.prompt_tokens), count, time.perf_counter() - started)
    if reason == "cancelled":
        logger.info("generation cancelled after %d token(s): its client went away", count)
    held += pending.decode("utf-8", errors="replace")
    if held:
        yield held
    yield Finish(reason=reason, completion_tokens=count)
