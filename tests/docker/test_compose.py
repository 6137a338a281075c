"""docker-compose.yml, checked against the Dockerfiles and each service's own Settings.

No Docker engine runs here, so these are static checks: a typo in a variable name, a port that
disagrees with the settings, a dependency without a health condition or a missing build file
fails here instead of in someone's `docker compose up`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from servicekit.serving import DEFAULT_SHUTDOWN_TIMEOUT_S
from tests.docker.composed import composed
from tests.docker.project import (
    COMPOSE_FILE,
    DOCKERFILE,
    NATS_CLIENT_PORT,
    ROOT,
    SECRET_WORDS,
    SERVICES,
    WITHOUT_MODEL_HOST,
    compose,
    compose_services,
    container_port,
    dockerfile,
    environment,
    image,
    interpolate,
    service_image,
    settings_variables,
)

BUILT = sorted(SERVICES)
CLUSTER_FILE = ROOT / "docker" / "cluster.yml"


def service(name: str) -> dict[str, Any]:
    services = compose_services()
    assert name in services, f"{COMPOSE_FILE.name} has no service {name!r}"
    return services[name]


@pytest.mark.parametrize("name", BUILT)
def test_each_service_is_built_from_the_one_dockerfile_with_its_name(name: str) -> None:
    build = service(name)["build"]
    assert build["dockerfile"] == DOCKERFILE
    assert build["args"]["SERVICE"] == name
    assert service_image(name).final.parent is image(name).final.parent


def test_compose_runs_nats_and_the_four_services() -> None:
    # Services under a profile (monitoring) start only when it is asked for.
    assert {name for name, spec in compose_services().items() if not spec.get("profiles")} == {
        "nats",
        "nats-init",
        *SERVICES,
    }


def test_nats_is_the_official_image_with_jetstream_on_a_volume() -> None:
    nats = service("nats")
    image = nats["image"]
    name, _, tag = image.partition(":")
    assert name == "nats", "the official image, not a third-party one"
    assert tag not in {"", "latest"}, f"pin a version: {image}"
    command = nats["command"]
    assert isinstance(command, list)
    assert "--jetstream" in command or "-js" in command
    store = (
        command[command.index("--store_dir") + 1]
        if "--store_dir" in command
        else command[command.index("-sd") + 1]
    )
    volumes = [str(volume) for volume in nats["volumes"]]
    mounted = {volume.split(":")[0]: volume.split(":")[1] for volume in volumes}
    assert store in mounted.values(), (
        f"JetStream's store {store} must be on a volume, not the container layer"
    )
    for volume_name, target in mounted.items():
        if target == store:
            assert volume_name in (compose().get("volumes") or {}), f"{volume_name} is not a declared volume"


def test_nats_health_is_checked_on_the_monitoring_port_it_enables() -> None:
    nats = service("nats")
    command = nats["command"]
    flag = "--http_port" if "--http_port" in command else "-m"
    monitor = int(command[command.index(flag) + 1])
    test = nats["healthcheck"]["test"]
    assert test[0] == "CMD", "exec form: the nats image's shell tools are busybox only"
    assert test[1] == "wget", "the alpine nats image has busybox wget, and no curl"
    url = urlsplit(test[-1])
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", monitor, "/healthz")
    assert nats["image"].endswith("-alpine"), "wget is only in the alpine variant (scratch has no tools)"


NATS_USER = "10002:10002"


def nats_nodes(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run nats-server: the nats image, without the one-shot volume step."""
    return {
        name: spec
        for name, spec in services.items()
        if str(spec.get("image", "")).startswith("nats:") and name != "nats-init"
    }


def store_volumes(services: dict[str, dict[str, Any]]) -> set[str]:
    """The named volumes the nats nodes keep JetStream's store on."""
    volumes = set()
    for spec in nats_nodes(services).values():
        command = spec["command"]
        store = command[command.index("--store_dir") + 1]
        volumes |= {str(v).split(":")[0] for v in spec["volumes"] if str(v).split(":")[1] == store}
    return volumes


@pytest.mark.parametrize("files", [(COMPOSE_FILE,), (COMPOSE_FILE, CLUSTER_FILE)], ids=["single", "cluster"])
def test_nats_runs_as_a_user_of_its_own_after_its_volumes_are_handed_to_it(files: tuple[Path, ...]) -> None:
    services = composed(*files, profiles=True)
    nodes = nats_nodes(services)
    assert (
        len(nodes) == len(files) * 3 - 2
    )  # nats; nats, nats-2, nats-3 and the migrate profile's nats-single
    for name, spec in nodes.items():
        uid, _, gid = str(spec.get("user", "")).partition(":")
        assert f"{uid}:{gid}" == NATS_USER, f"{name} must not run as root (the image's default)"
        assert spec["depends_on"]["nats-init"] == {"condition": "service_completed_successfully"}, name
    init = services["nats-init"]
    assert init["image"] == services["nats"]["image"], "the same image: no other pull"
    assert init["command"] == ["chown", "-R", "-h", NATS_USER, "/volumes"]
    mounted = {str(v).split(":")[0]: str(v).split(":")[1] for v in init["volumes"]}
    assert set(mounted) == store_volumes(services), "every node's store, and nothing else"
    assert all(target.startswith("/volumes/") for target in mounted.values())
    # Root only to change owners: no other capability, no network, never restarted.
    assert (init["cap_drop"], sorted(init["cap_add"])) == (["ALL"], ["CHOWN", "DAC_READ_SEARCH"])
    assert (init["network_mode"], init["restart"]) == ("none", "no")
    assert "ports" not in init
    assert "healthcheck" not in init


@pytest.mark.parametrize("name", BUILT)
def test_build_context_and_dockerfile_exist(name: str) -> None:
    build = service(name)["build"]
    context = ROOT / build.get("context", ".")
    assert context.resolve() == ROOT, (
        "the context is the repository root: it holds poetry.lock and jobs_contract"
    )
    assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} does not exist"
    assert (context / ".dockerignore").is_file()
    assert "image" not in service(name), "an image name next to `build` makes compose try to pull it first"


@pytest.mark.parametrize("name", BUILT)
def test_command_is_the_real_entry_point(name: str) -> None:
    package = SERVICES[name].package
    spec = service(name)
    image = service_image(name).final
    command = spec.get("command", image.effective_cmd())
    assert "entrypoint" not in spec, "nothing wraps the command"
    assert image.effective_entrypoint() is None, "nothing wraps the command"
    assert command == ["python", "-m", package]
    assert (ROOT / package / "__main__.py").is_file(), f"`python -m {package}` needs {package}/__main__.py"


@pytest.mark.parametrize("name", BUILT)
def test_every_variable_set_is_one_the_service_reads(name: str) -> None:
    package = SERVICES[name].package
    readable = settings_variables(package)
    unknown = sorted(set(environment(service(name))) - set(readable))
    assert not unknown, f"{name} sets {unknown}, which {package}.settings.Settings does not read"


@pytest.mark.parametrize("name", BUILT)
def test_ports_agree_with_the_settings_and_the_image(name: str) -> None:
    facts = SERVICES[name]
    port = container_port(name)
    env = environment(service(name))
    set_port = env.get(facts.port_field.upper())
    if set_port is not None:
        assert int(set_port) == port, f"{facts.port_field.upper()} differs from the settings' {port}"
    image = service_image(name).final
    assert image.effective_exposed() == [str(port)]
    assert image.effective_env()[facts.port_field.upper()] == str(port)
    for mapping in service(name).get("ports", []):
        target = str(mapping).rsplit(":", 1)[-1]
        assert int(target) == port, f"{name} publishes {mapping}, but the service listens on {port}"


def test_the_graders_ports_are_published() -> None:
    published: dict[str, int] = {}
    for name in SERVICES:
        for mapping in service(name).get("ports", []):
            parts = interpolate(str(mapping)).split(":")
            assert parts[0] == "127.0.0.1", (
                "published on loopback by default: nothing here has authentication"
            )
            published[name] = int(parts[1])
    assert published == {"analyzer": 8000, "gateway": 8001, "model_host": 8002}


def _service_urls() -> list[tuple[str, str, str]]:
    """(service, variable, URL) for every variable whose value is a URL to another service."""
    found = []
    for name in BUILT:
        for variable, value in environment(service(name)).items():
            if value and "://" in value:
                found.append((name, variable, value))
    return found


def test_urls_point_at_a_service_of_this_file_on_its_real_port() -> None:
    urls = _service_urls()
    assert {(name, variable) for name, variable, _ in urls} >= {
        ("analyzer", "NATS_URL"),
        ("analyzer", "GATEWAY_URL"),
        ("fetcher", "NATS_URL"),
        ("gateway", "LOCAL_LLM_BASE_URL"),
    }
    for name, variable, value in urls:
        url = urlsplit(value)
        assert url.hostname in compose_services(), f"{name} {variable}={value}: no such service"
        expected = NATS_CLIENT_PORT if url.hostname == "nats" else container_port(str(url.hostname))
        assert url.port == expected, f"{name} {variable}={value}: {url.hostname} listens on {expected}"


def test_openai_style_base_urls_end_in_v1() -> None:
    env = environment(service("analyzer"))
    assert urlsplit(env["GATEWAY_URL"] or "").path == "/v1"
    assert urlsplit(environment(service("gateway"))["LOCAL_LLM_BASE_URL"] or "").path == "/v1"


def test_nothing_starts_before_what_it_needs_is_healthy() -> None:
    services = compose_services()
    for name, variable, value in _service_urls():
        target = str(urlsplit(value).hostname)
        depends = services[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must be a mapping with conditions"
        assert target in depends, f"{name} uses {target} ({variable}) but does not depend on it"
    for name, spec in services.items():
        for target, condition in (spec.get("depends_on") or {}).items():
            if services[target].get("restart") == "no":  # a step that runs once, then exits
                assert condition["condition"] == "service_completed_successfully", f"{name} -> {target}"
                continue
            assert condition["condition"] == "service_healthy", f"{name} -> {target}"
            has_check = "healthcheck" in services[target] or (
                target in SERVICES and service_image(target).final.effective_healthcheck() is not None
            )
            assert has_check, f"{name} waits for {target} to be healthy, but {target} has no health check"


def test_only_model_host_may_be_left_out() -> None:
    for name, spec in compose_services().items():
        for target, condition in (spec.get("depends_on") or {}).items():
            required = condition.get("required", True)
            assert required is (target != "model_host"), f"{name} -> {target}: required={required}"


def test_llm_provider_is_local_by_default_and_comes_from_the_shell() -> None:
    env = environment(service("gateway"))
    provider = env["LLM_PROVIDER"] or ""
    assert interpolate(provider) == "local"
    assert interpolate(provider, {"LLM_PROVIDER": "openai"}) == "openai"


def test_secrets_are_passed_through_never_written_down() -> None:
    for name, spec in compose_services().items():
        for variable, value in environment(spec).items():
            if SECRET_WORDS.search(variable):
                assert value is None, f"{name}: {variable} must have no value (taken from the shell or .env)"
        args = (spec.get("build") or {}).get("args") or {} if isinstance(spec.get("build"), dict) else {}
        assert not [arg for arg in args if SECRET_WORDS.search(arg)], f"{name}: a secret as a build argument"


def test_the_keys_the_readme_promises_reach_the_gateway() -> None:
    env = environment(service("gateway"))
    for variable in ("OPENAI_API_KEY", "OPENAI_MODEL", "DEEPSEEK_API_KEY", "DEEPSEEK_MODEL"):
        assert variable in env, f"{variable} is not passed on to the gateway"
    assert "GITHUB_TOKEN" in environment(service("fetcher"))


@pytest.mark.parametrize("name", BUILT)
def test_build_arguments_are_the_ones_the_dockerfile_takes(name: str) -> None:
    build = service(name)["build"]
    built = dockerfile(build["dockerfile"])
    declared = set(built.global_args) | {arg for stage in built.stages for arg in stage.args}
    assert set(build.get("args") or {}) <= declared


def test_the_model_is_the_dockerfiles_default_unless_the_shell_names_one() -> None:
    assert service("model_host")["build"]["args"]["MODEL"] is None, "no second default in compose"
    default = dockerfile(DOCKERFILE).global_args["MODEL"]
    assert service_image("model_host").final.effective_env()["MODEL"] == default
    chosen = service_image("model_host", {"MODEL": "smollm2-135m"}).final.effective_env()
    assert chosen["MODEL"] == "smollm2-135m"


def test_the_override_leaves_model_host_out_and_nothing_else() -> None:
    override = compose(WITHOUT_MODEL_HOST)
    assert set(override["services"]) == {"model_host"}
    assert override["services"]["model_host"] == {"profiles": ["local"]}


def test_what_env_example_offers_reaches_the_services_that_read_it() -> None:
    # Users copy .env.example to .env, which compose reads too: each variable offered there must
    # reach every service that reads it, unless compose fixes it for the containers (ports, URLs).
    offered = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert offered, ".env.example offers no variables: the pattern is broken"
    for variable in offered:
        for name in BUILT:
            if variable not in settings_variables(SERVICES[name].package):
                continue
            env = environment(service(name))
            assert variable in env, f".env.example offers {variable}, which compose never passes to {name}"
            fixed = env[variable]
            if fixed is not None and "${" not in fixed:
                assert variable.endswith(("_PORT", "_URL")), f"{name}: {variable} fixed to {fixed!r}"


@pytest.mark.parametrize("name", BUILT)
def test_compose_waits_longer_than_the_service_stops(name: str) -> None:
    grace = service(name).get("stop_grace_period")
    assert isinstance(grace, str), f"{name}: compose's default 10 s is below SHUTDOWN_TIMEOUT_S"
    bound = int(environment(service(name)).get("SHUTDOWN_TIMEOUT_S") or DEFAULT_SHUTDOWN_TIMEOUT_S)
    # The service's bound, then its lifespan's closing and the process exit.
    assert int(grace.removesuffix("s")) >= bound + 5
