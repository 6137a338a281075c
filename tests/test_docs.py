"""docs/*.md must name the settings the code reads, as tests/test_readme.py keeps the README true.

Two checks: each service's page documents every setting of that service's Settings in its table,
and no page (README included) names a setting-like variable that nothing reads, such as a
misspelt `ANALYZE_WAIT_TIMEOUT_S`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

import jobs_contract
from codereview.commands import app as cli_app
from devstack.runner import StackSettings
from tests.docker.project import DOCKERFILE, compose_services, dockerfile, settings_variables

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
SERVICES = ["analyzer", "gateway", "fetcher", "model_host"]
# Variable names of ours start like this; other upper-case words in backticks (HTTP headers,
# constants in docs/lookup.md) do not.
OURS = re.compile(
    r"`((?:ANALYZE|GATEWAY_|FETCHER_|MODEL_|LLM_|REVIEW_|NATS_|OPENAI_|DEEPSEEK_|LOCAL_LLM_|GITHUB_|CODEREVIEW_|LOG_)"
    r"[A-Z0-9_]*)`"
)


def settings_table(text: str) -> set[str]:
    """Variables in the first column of the tables whose header's first column is `variable`."""
    found: set[str] = set()
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        first = line.split("|")[1].strip()
        if first.lower() == "variable":
            in_table = True
        elif in_table:
            found.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return found


def known_variables() -> set[str]:
    """Every variable something reads: the services' and the stack's settings, compose, the images."""
    known = {name.upper() for name in StackSettings.model_fields}
    for package in SERVICES:
        known |= set(settings_variables(package))
    for service in compose_services().values():
        for value in service.get("ports", []):
            known.update(re.findall(r"\$\{([A-Z_]+)", str(value)))
    built = dockerfile(DOCKERFILE)
    known |= set(built.global_args) | {arg for stage in built.stages for arg in stage.args}
    known |= cli_variables()
    # NATS names spelt like variables (the fetch stream CODEREVIEW_FETCH): the contract's, not settings.
    known |= {
        value for name, value in vars(jobs_contract).items() if name.isupper() and isinstance(value, str)
    }
    return known


def cli_variables() -> set[str]:
    """The environment variables the `codereview` command line reads (its options' defaults)."""
    found: set[str] = set()
    group = typer.main.get_command(cli_app)
    for command in [group, *getattr(group, "commands", {}).values()]:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                found.add(envvar)
            elif envvar:
                found.update(envvar)
    return found


@pytest.mark.parametrize("package", SERVICES)
def test_every_setting_of_a_service_is_in_its_page_table(package: str) -> None:
    page = ROOT / "docs" / f"{package}.md"
    documented = settings_table(page.read_text())
    assert documented, f"{page.name} has no settings table (a header whose first column is `variable`)"
    missing = sorted(set(settings_variables(package)) - documented)
    assert not missing, f"{page.name} does not document {missing}"


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda path: path.name)
def test_every_variable_a_page_names_is_read_by_something(page: Path) -> None:
    unknown = sorted(set(OURS.findall(page.read_text())) - known_variables())
    assert not unknown, f"{page.name} names {unknown}, which no settings class, compose file or image reads"


def test_the_name_check_would_catch_a_misspelt_variable() -> None:
    assert OURS.findall("waits `ANALYZE_WAIT_TIMEOUT_S`, then `Retry-After`, `MAX_NAME_LENGTH`") == [
        "ANALYZE_WAIT_TIMEOUT_S"
    ]
    assert "ANALYZE_WAIT_TIMEOUT_S" not in known_variables()
    assert {"CODEREVIEW_ANALYZER_URL", "NATS_URL"} <= cli_variables()
    assert "ANALYZER_WAIT_TIMEOUT_S" in known_variables()


# A path of ours in backticks: `gateway/checks.py`, `analyzer/uses/`, `bench/corpus/clean/` (a
# folder ends with `/`, a file has an extension: `codereview/v1`, a SARIF key, is neither).
_PATH = re.compile(
    r"`((?:analyzer|gateway|fetcher|model_host|jobs_contract|review_contract|servicekit|codereview|devstack"
    r"|bench|docker|tests)/(?:[A-Za-z0-9_./-]*/|[A-Za-z0-9_./-]*\.[a-z]+)?)(?::[^`]*)?`"
)


def named_paths(text: str) -> set[str]:
    return set(_PATH.findall(text))


@pytest.mark.parametrize("page", [*DOCS, ROOT / "README.md"], ids=lambda page: page.name)
def test_every_file_a_page_names_exists(page: Path) -> None:
    """A page that names a module names one that is there (no `gateway/http1.py` years after it went);
    a module gone but worth recalling is named in prose, not as a path."""
    missing = sorted(path for path in named_paths(page.read_text()) if not (ROOT / path).exists())
    assert missing == []


def test_the_path_check_would_catch_a_moved_module() -> None:
    text = "the client (`gateway/http1.py`) and `analyzer/uses/` and `bench/x.py:12`, `codereview/v1`"
    assert named_paths(text) == {
        "gateway/http1.py",
        "analyzer/uses/",
        "bench/x.py",
    }


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a page's headings (lower case, punctuation dropped, spaces to -)."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    }


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_every_link_of_a_page_reaches_a_file_and_heading(page: Path) -> None:
    """Links between pages (and to the tree) land: the file exists, and the heading an anchor names."""
    text = page.read_text()
    broken = []
    for target in re.findall(r"\]\(((?!https?://)[^)\s]+)\)", text):
        path, _, anchor = target.partition("#")
        file = page if not path else (page.parent / path).resolve()
        if not file.exists() or (
            anchor and file.suffix == ".md" and anchor not in heading_anchors(file.read_text())
        ):
            broken.append(target)
    assert broken == []
