"""What the builder uninstalls from a service's venv (docker/Dockerfile's PRUNED) is dead weight there.

Only litestar requires those libraries, for its command line, its OpenAPI example generation and
(httpx, pruned from the gateway) its test client; no service imports them. The static checks here
keep that true as the code and the lock change; tests/docker/test_compose_on_loopback.py runs the
whole stack with them unimportable, and the image build itself imports each service after they
are gone.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.docker.composed import without_modules
from tests.docker.project import (
    FIRST_PARTY,
    ROOT,
    SERVICES,
    image,
    imports_of,
    lock_groups,
    modules_of,
    normalize,
    pruned,
)

NAMES = sorted(SERVICES)
PRUNING = [name for name in NAMES if pruned(name)]
# The one installed library that may require what is pruned: litestar, for its CLI (rich-click,
# rich), OpenAPI examples (polyfactory) and test client (httpx), none of which a service uses.
MAY_REQUIRE_PRUNED = {"litestar"}


def locked_requirements() -> dict[str, set[str]]:
    """Locked distribution -> what it requires (normalized names)."""
    lock = tomllib.loads((ROOT / "poetry.lock").read_text())
    return {
        normalize(item["name"]): {normalize(name) for name in item.get("dependencies", {})}
        for item in lock["package"]
    }


def installed_in(name: str) -> set[str]:
    wanted = {normalize(group) for group in SERVICES[name].groups}
    return {dist for dist, groups in lock_groups().items() if groups & wanted}


def first_party_of(name: str) -> set[str]:
    """The service's package and every first-party package it imports, transitively."""
    needed = {SERVICES[name].package}
    todo = list(needed)
    while todo:
        for module in imports_of(todo.pop()) & set(FIRST_PARTY):
            if module not in needed:
                needed.add(module)
                todo.append(module)
    return needed


def test_the_three_small_images_prune_and_model_host_keeps_everything() -> None:
    assert PRUNING == ["analyzer", "fetcher", "gateway"]
    assert pruned("analyzer") == pruned("fetcher")
    assert set(pruned("gateway")) - set(pruned("analyzer")) == {"httpx", "httpcore", "certifi"}
    # model_host's catalogue draws its progress bar with rich.
    assert "rich" in imports_of("model_host")


def test_every_pruned_library_is_locked_and_in_an_image_that_prunes_it() -> None:
    # A name that no longer matches a locked distribution would prune nothing, silently.
    for dist in {dist for name in PRUNING for dist in pruned(name)}:
        assert dist in lock_groups(), f"{dist} is not in poetry.lock: update PRUNED"
        assert any(dist in installed_in(name) for name in PRUNING), f"no image installs {dist}"


@pytest.mark.parametrize("name", PRUNING)
def test_no_group_of_the_image_asks_for_a_pruned_library_itself(name: str) -> None:
    poetry = tomllib.loads((ROOT / "pyproject.toml").read_text())
    direct = {normalize(Requirement(dep).name) for dep in poetry["project"]["dependencies"]}
    direct |= {normalize(dep) for dep in poetry["tool"]["poetry"]["group"][name]["dependencies"]}
    assert not direct & set(pruned(name)), f"{name} asks for {sorted(direct & set(pruned(name)))}"


@pytest.mark.parametrize("name", PRUNING)
def test_only_litestar_requires_what_the_image_prunes(name: str) -> None:
    kept = installed_in(name) - set(pruned(name))
    requirements = locked_requirements()
    requirers = {dist for dist in kept if requirements.get(dist, set()) & set(pruned(name))}
    assert requirers <= MAY_REQUIRE_PRUNED, (
        f"{sorted(requirers - MAY_REQUIRE_PRUNED)} require what the {name} image prunes: "
        "check they never import it at run time before adding them to MAY_REQUIRE_PRUNED"
    )


@pytest.mark.parametrize("name", PRUNING)
def test_no_first_party_code_in_the_image_imports_a_pruned_library(name: str) -> None:
    gone = modules_of(pruned(name))
    assert {"faker", "polyfactory", "rich", "pygments"} <= gone, "the module names were not found"
    for package in first_party_of(name):
        assert not imports_of(package) & gone, f"{package} imports {sorted(imports_of(package) & gone)}"


@pytest.mark.parametrize("name", PRUNING)
def test_no_first_party_code_in_the_image_formats_tracebacks_with_rich(name: str) -> None:
    # structlog imports rich only if it can; without it these names are still there, and fail
    # (NameError) when the first exception is logged. Litestar's StructLoggingConfig uses one on
    # a TTY.
    rich_only = {
        "RichTracebackFormatter",
        "rich_traceback",
        "rich_monochrome_traceback",
        "StructLoggingConfig",
    }
    for package in first_party_of(name):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                used = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
                if isinstance(node, ast.alias):
                    used = node.name
                assert used not in rich_only, f"{path.relative_to(ROOT)} uses {used}, which needs rich"


def test_no_service_asks_litestar_for_openapi_examples() -> None:
    # Litestar imports polyfactory (and so faker) only for OpenAPIConfig(create_examples=True)
    # or a route's generate_examples.
    for package in ("analyzer", "gateway", "model_host"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.keyword):
                    assert node.arg not in {"create_examples", "generate_examples"}, (
                        f"{path.relative_to(ROOT)}: {node.arg}= needs polyfactory, which the images prune"
                    )


@pytest.mark.parametrize("name", PRUNING)
def test_pruning_happens_before_the_build_imports_the_service(name: str) -> None:
    builder = image(name).stage("builder")
    runs = builder.all("RUN")
    (prune,) = [run for run in runs if " uninstall " in run.raw]
    (warm_up,) = [run for run in runs if "compileall" in run.raw]
    (sync,) = [run for run in runs if " sync " in run.raw]
    assert sync.line < prune.line < warm_up.line
    # ... and before the code is copied: a code change does not re-run it.
    first_code_copy = min(copy.line for copy in builder.copies if copy.dest.startswith("/src/"))
    assert prune.line < first_code_copy
    (expanded,) = [run for run in builder.runs if " uninstall " in run]
    assert expanded.count("/opt/poetry/bin/pip --python /opt/venv/bin/python uninstall --yes --quiet ") == 2


def test_a_process_started_without_the_pruned_modules_cannot_import_them(tmp_path: Path) -> None:
    folder = without_modules(tmp_path / "pruned", modules_of(pruned("gateway")))
    script = """
import importlib.util, sys
for name in ("faker", "polyfactory", "rich.console", "pygments.lexers", "rich_click"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        pass
    else:
        sys.exit(f"{name} imported")
assert importlib.util.find_spec("rich") is None
import litestar, structlog  # what requires them still imports
# structlog without rich: a traceback in plain text instead of rich's
try:
    1 / 0
except ZeroDivisionError:
    event = {"event": "boom", "exc_info": sys.exc_info()}
    line = structlog.dev.ConsoleRenderer(colors=False)(None, "error", event)
print(line)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": f"{folder}:{ROOT}", "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "boom" in result.stdout
    assert "ZeroDivisionError: division by zero" in result.stdout
    assert "Traceback (most recent call last)" in result.stdout, "the plain format, not rich's"
