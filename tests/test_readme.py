"""The README is the front door: its settings tables and links must match the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("package", SERVICES)
def test_every_setting_of_a_service_is_in_its_readme_table(package: str) -> None:
    documented = table_variables(
        section("Configuration").split(f"\n### {package}\n", 1)[1].split("\n### ", 1)[0]
    )
    assert variables(settings_class(package)) - documented == set()


def test_every_variable_in_the_readme_tables_is_read_by_something() -> None:
    known = variables(StackSettings).union(*(variables(settings_class(p)) for p in SERVICES))
    assert table_variables(section("Configuration")) - known == set()


def test_env_example_names_only_real_settings() -> None:
    known = variables(StackSettings).union(*(variables(settings_class(p)) for p in SERVICES))
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert named
    assert named - known == set()


def test_local_links_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", README)
    assert targets
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert missing == []


def test_quick_start_commands_are_the_ones_ci_runs() -> None:
    quick_start = section("Quick start")
    assert "python3 dev.py up" in quick_start
    assert "python3 dev.py test" in quick_start
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()
