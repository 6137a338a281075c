"""servicekit.text: which characters are escaped, how, and that everything else is left alone."""

from __future__ import annotations

import json

import pytest

from servicekit.text import json_printable, printable

ESCAPED = [
    *(chr(code) for code in range(0x20)),
    "\x7f",
    *(chr(code) for code in range(0x80, 0xA0)),
    *"\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
]


@pytest.mark.parametrize("char", ESCAPED, ids=[f"U+{ord(c):04X}" for c in ESCAPED])
def test_each_control_and_bidi_character_is_a_visible_escape(char: str) -> None:
    shown = printable(f"a{char}b")
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    assert shown == "a" + (named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")) + "b"
    assert shown.isprintable()
    line = json.dumps({"v": f"a{char}b"}, ensure_ascii=False)
    safe = json_printable(line)
    assert char not in safe
    assert json.loads(safe) == {"v": f"a{char}b"}


def test_named_escapes_and_ordinary_text() -> None:
    assert printable("a\nb\rc\td\x1be\x9bf\u202eg") == "a\\nb\\rc\\td\\x1be\\x9bf\\u202eg"
    ordinary = "café, 関数, emoji 🎉, Ελληνικά, עברית, a\\nb [bold] 100%"
    assert printable(ordinary) is ordinary
    line = json.dumps({"v": ordinary}, ensure_ascii=False)
    assert json_printable(line) is line
