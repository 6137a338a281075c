"""The test command's split (noxfile.py): `alone` tests after the parallel part, whatever `-m` is given."""

from __future__ import annotations

import noxfile


def test_without_a_marker_expression_each_part_gets_its_own() -> None:
    assert noxfile.marked([], "not alone") == ["-m", "not alone"]
    assert noxfile.marked(["tests/x.py", "-q"], "alone") == ["-m", "alone", "tests/x.py", "-q"]


def test_a_given_marker_expression_is_and_ed_in_either_spelling() -> None:
    assert noxfile.marked(["-m", "not slow", "-x"], "not alone") == ["-m", "(not slow) and not alone", "-x"]
    assert noxfile.marked(["-mnats", "--durations=5"], "alone") == ["-m", "(nats) and alone", "--durations=5"]
