"""SnapshotIndex.reach and .text: what a name used in a module means, without any text search."""

from __future__ import annotations

import pytest

from analyzer.locate import Reached, SnapshotIndex
from tests.analyzer.helpers import src

FILES = {
    "pkg/__init__.py": b"from .core import Engine\n",
    "pkg/core.py": src("""
        from .consts import *
        from . import consts as c
        import pkg.util

        DEFAULT = LIMIT

        class Engine:
            def run(self): ...
    """),
    "pkg/consts.py": b"LIMIT = 3\n",
    "pkg/util.py": b"def helper(): ...\n",
    "pkg/broken.py": b"def broken(:\n",
    "pkg/user.py": b"from pkg.broken import broken\nfrom pkg import Engine\nimport requests\n",
}


class NoSearch:
    """A Search that fails the test if asked: `reach` must answer from the tables alone."""

    def holders(self, name: str, within: tuple[str, ...] | None) -> frozenset[str]:
        raise AssertionError(f"searched the text for {name!r}")

    def suggest(self, parts: list[str]) -> list[str]:
        raise AssertionError(f"suggested names for {parts!r}")


@pytest.fixture
def snapshot() -> SnapshotIndex:
    return SnapshotIndex(FILES, "owner/project", search=NoSearch())


def test_a_definition_through_re_exports(snapshot: SnapshotIndex) -> None:
    reached = snapshot.reach("pkg/user.py", "Engine.run")
    assert reached.definition is not None
    assert (reached.definition.path, reached.qualname) == ("pkg/core.py", "Engine.run")
    assert reached.definition.qualified_name == "pkg.core.Engine.run"


def test_a_module_attribute_and_an_import_inside_a_function(snapshot: SnapshotIndex) -> None:
    via_module = snapshot.reach("pkg/core.py", "pkg.util.helper")
    assert via_module.definition is not None
    assert via_module.qualname == "helper"
    imported = snapshot.reach("pkg/user.py", "util.helper", imported=(1, ""))
    assert imported.definition is not None
    assert (imported.definition.path, imported.qualname) == ("pkg/util.py", "helper")


def test_names_that_lead_nowhere_say_where_an_assignment_may_bind_them(snapshot: SnapshotIndex) -> None:
    # Through a star import: the module itself first, then the star's.
    assert snapshot.reach("pkg/core.py", "LIMIT") == Reached(
        unbound=(("pkg/core.py", "LIMIT"), ("pkg/consts.py", "LIMIT"))
    )
    assert snapshot.reach("pkg/core.py", "c.LIMIT").unbound == (("pkg/consts.py", "LIMIT"),)
    # A plain alias is an assignment too, and leads on to what it names.
    assert snapshot.reach("pkg/core.py", "DEFAULT").unbound[0] == ("pkg/core.py", "DEFAULT")


def test_outside_the_snapshot_or_in_a_broken_file_is_nothing(snapshot: SnapshotIndex) -> None:
    assert snapshot.reach("pkg/user.py", "requests.get") == Reached()
    assert snapshot.reach("pkg/user.py", "broken").definition is None
    assert snapshot.reach("pkg/user.py", "len") == Reached(unbound=(("pkg/user.py", "len"),))
    with pytest.raises(KeyError):
        snapshot.reach("nowhere.py", "x")


def test_text_is_given_only_for_files_that_parse(snapshot: SnapshotIndex) -> None:
    assert snapshot.text("pkg/consts.py") == "LIMIT = 3\n"
    assert snapshot.text("pkg/broken.py") is None
    with pytest.raises(KeyError):
        snapshot.text("README.md")
