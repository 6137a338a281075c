"""The README is the front door: short, its links and its one settings table true to the code.

Each service's settings are documented once, in its page's table (tests/test_docs.py); the
README links to those tables.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

from devstack.runner import StackSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SERVICES = ["analyzer", "gateway", "fetcher", "model_host"]


def settings_class(package: str) -> type[BaseSettings]:
    cls: type[BaseSettings] = importlib.import_module(f"{package}.settings").Settings
    return cls


def variables(cls: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in cls.model_fields}


def section(title: str) -> str:
    """The README text from `## title` to the next `## ` heading."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_variables(text: str) -> set[str]:
    """Variables named in the first column of the Markdown tables in `text`."""
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            found.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return found


def test_every_variable_in_the_readme_tables_is_read_by_something() -> None:
    known = variables(StackSettings).union(*(variables(settings_class(p)) for p in SERVICES))
    assert table_variables(section("Configuration")) - known == set()


def test_env_example_names_only_real_settings() -> None:
    known = variables(StackSettings).union(*(variables(settings_class(p)) for p in SERVICES))
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert named
    assert named - known == set()


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a page's headings (lower case, punctuation dropped, spaces to -)."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_local_links_point_at_files_and_headings_that_exist() -> None:
    targets = re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", README)
    assert targets
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert missing == []
    unanchored = [
        target
        for target in targets
        if "#" in target
        and target.split("#", 1)[1] not in anchors((ROOT / target.split("#", 1)[0]).read_text())
    ]
    assert unanchored == []


def test_the_anchor_check_would_catch_a_wrong_heading() -> None:
    assert "settings" in anchors("# analyzer\n\n## Settings\n")
    assert "the-local-stack-python3-devpy-up" in anchors("### The local stack (`python3 dev.py up`)\n")
    assert "setting" not in anchors("## Settings\n")


def test_the_readme_is_a_front_door_not_a_record() -> None:
    """What it is, the two commands, using it, configuration, links: figures live in
    docs/benchmarks.md, transcripts in docs/examples.md."""
    assert len(README.splitlines()) <= 300
    assert "## Benchmarks" not in README
    assert "[docs/benchmarks.md](docs/benchmarks.md)" in README


def test_quick_start_commands_are_the_ones_ci_runs() -> None:
    quick_start = section("Quick start")
    assert "python3 dev.py up" in quick_start
    assert "python3 dev.py test" in quick_start
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()
