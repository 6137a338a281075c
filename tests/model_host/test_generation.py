"""The engine-agnostic generation loop: max_tokens, stop strings, UTF-8 and cancellation."""

from __future__ import annotations

import threading

import pytest

from model_host.engines import Sampling
from model_host.generation import Finish, Generation, generate
from tests.model_host.fakes import ScriptedEngine


def job(max_tokens: int = 16, stop: list[str] | None = None) -> Generation:
    return Generation(prompt_tokens=[1, 2, 3], max_tokens=max_tokens, stop=stop or [], sampling=Sampling())


def run(
    engine: ScriptedEngine, the_job: Generation, cancelled: threading.Event | None = None
) -> tuple[list[str], Finish]:
    items = list(generate(engine, the_job, cancelled or threading.Event()))
    finish = items[-1]
    assert isinstance(finish, Finish)
    pieces = [item for item in items[:-1] if isinstance(item, str)]
    assert len(pieces) == len(items) - 1
    return pieces, finish


def test_ends_with_stop_when_the_model_ends_its_turn() -> None:
    pieces, finish = run(ScriptedEngine([b"Hello", b" world"]), job())
    assert "".join(pieces) == "Hello world"
    assert finish == Finish(reason="stop", completion_tokens=2)


def test_max_tokens_ends_with_length() -> None:
    pieces, finish = run(ScriptedEngine([b"a", b"b", b"c", b"d"]), job(max_tokens=3))
    assert "".join(pieces) == "abc"
    assert finish == Finish(reason="length", completion_tokens=3)


def test_a_stop_string_split_across_tokens_is_cut_and_never_shown() -> None:
    engine = ScriptedEngine([b"He", b"llo", b" wor", b"ld", b" again"])
    pieces, finish = run(engine, job(stop=["lo wo"]))
    # "lo" could have begun the stop string: it was held back, never sent and then taken back.
    assert pieces == ["He", "l"]
    assert finish == Finish(reason="stop", completion_tokens=3)


def test_held_back_text_is_released_when_it_turns_out_not_to_be_a_stop_string() -> None:
    pieces, finish = run(ScriptedEngine([b"ab", b"c", b"d"]), job(stop=["bcx"]))
    assert "".join(pieces) == "abcd"
    assert pieces[0] == "a"
    assert finish.reason == "stop"


def test_the_earliest_of_several_stop_strings_wins() -> None:
    pieces, _ = run(ScriptedEngine([b"one two three"]), job(stop=["three", "two"]))
    assert "".join(pieces) == "one "


def test_a_utf8_character_split_across_tokens_arrives_whole() -> None:
    snowman = "☃".encode()
    engine = ScriptedEngine([b"x", snowman[:1], snowman[1:2], snowman[2:], b"y"])
    pieces, finish = run(engine, job())
    assert "".join(pieces) == "x☃y"
    assert all("\ufffd" not in piece for piece in pieces)
    assert finish.completion_tokens == 5


def test_an_unfinished_utf8_character_at_the_end_is_replaced_not_dropped() -> None:
    pieces, _ = run(ScriptedEngine([b"x", "é".encode()[:1]]), job())
    assert "".join(pieces) == "x\ufffd"


def test_cancelled_stops_after_the_token_in_progress() -> None:
    cancelled = threading.Event()
    cancelled.set()
    pieces, finish = run(ScriptedEngine([b"a"], end_of_turn=False), job(max_tokens=1000), cancelled)
    assert finish == Finish(reason="cancelled", completion_tokens=1)
    assert "".join(pieces) == "a"


@pytest.mark.parametrize("max_tokens", [1, 2, 7])
def test_completion_tokens_counts_every_generated_token(max_tokens: int) -> None:
    _, finish = run(ScriptedEngine([b"z"], end_of_turn=False), job(max_tokens=max_tokens))
    assert finish == Finish(reason="length", completion_tokens=max_tokens)
