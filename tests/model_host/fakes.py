"""A scripted stand-in for a model engine, for the tests that are about everything but the model."""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence

from model_host.engines import RenderedPrompt, Sampling


class ScriptedEngine:
    """Tokenizes one token per character; generates the byte strings of `script`, then ends its turn.

    `gate`, when given, is waited on before each generated token, so a test can hold a generation
    in the middle; `started` is set when the first token is asked for.
    """

    name = "scripted"

    def __init__(
        self,
        script: Sequence[bytes] = (b"Hello", b" world"),
        *,
        context_size: int = 64,
        supports_grammar: bool = True,
        gate: threading.Event | None = None,
        end_of_turn: bool = True,
    ) -> None:
        self.script = list(script)
        self.context_size = context_size
        self.supports_grammar = supports_grammar
        self.gate = gate
        self.end_of_turn = end_of_turn
        self.started = threading.Event()
        self.calls: list[tuple[list[int], Sampling, str | None]] = []

    def render_chat(self, messages: list[dict[str, str]]) -> RenderedPrompt:
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"
        return RenderedPrompt(text=text, stop=["<end>"])

    def tokenize(self, text: str) -> list[int]:
        return [ord(char) for char in text]

    def token_stream(
        self, prompt_tokens: Sequence[int], sampling: Sampling, grammar: str | None
    ) -> Generator[int, None, None]:
        self.calls.append((list(prompt_tokens), sampling, grammar))
        self.started.set()
        index = 0
        while self.end_of_turn is False or index < len(self.script):
            if self.gate is not None:
                self.gate.wait()
            yield index % len(self.script)
            index += 1

    def piece(self, token: int) -> bytes:
        return self.script[token]
