"""servicekit.redact: another party's text, short, keys masked, one printable line."""

from __future__ import annotations

import pytest

from servicekit.redact import escaped, excerpt, mask_keys


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Incorrect API key provided: sk-proj-Ab12cd. See docs", "Incorrect API key provided: *** See docs"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: ***"),
        ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "***"),
        ("id 3f2a9c1e8b7d4a6f9e0c2b5d7a1f3e8c9b4d6a2f here", "id *** here"),
        ("key AKIAIOSFODNN7EXAMPLE", "key ***"),
        # Our own words stay readable: names, limits, statuses.
        (
            "rate_limit_exceeded: over LLM_MAX_RESPONSE_BYTES=16777216",
            "rate_limit_exceeded: over LLM_MAX_RESPONSE_BYTES=16777216",
        ),
        ("the model answered HTTP 429", "the model answered HTTP 429"),
    ],
)
def test_key_like_tokens_are_masked(text: str, masked: str) -> None:
    assert mask_keys(text) == masked


def test_a_known_secret_is_masked_whatever_it_looks_like() -> None:
    assert mask_keys("your key is plainword, sorry", ["plainword"]) == "your key is ***, sorry"


def test_control_and_bidi_characters_are_escaped() -> None:
    assert escaped("a\nb\x1b[31m\u202e\x9b ok") == "a\\u000ab\\u001b[31m\\u202e\\u009b ok"
    assert escaped("plain text") == "plain text"


def test_an_excerpt_is_short_masked_then_cut() -> None:
    key = "sk-" + "x" * 200
    assert excerpt("ab " * 200, limit=10) == "ab ab ab a…"
    # The key straddles the cut: masked whole before it, so no part of it shows.
    assert excerpt("y" * 5 + " " + key, limit=20) == "y" * 5 + " ***…"
    assert excerpt("short") == "short"
