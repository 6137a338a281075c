"""The script every image runs, run here the way the images run it: as `python script ...`.

docker/healthcheck.py is every image's HEALTHCHECK; it talks real HTTP to a server on loopback.
(model_host's model is put in place by `python -m model_host.catalogue pull`, tested in
tests/model_host/test_catalogue.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.loopback import Answer, loopback
from tests.docker.project import ROOT
from tests.support.ports import free_port

HEALTHCHECK = ROOT / "docker" / "healthcheck.py"


def run(script: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("MODEL_", "PORT_"))}
    return subprocess.run(
        [sys.executable, str(script), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_healthy_when_health_answers_200() -> None:
    with loopback({"/health": Answer(200, b'{"status":"ok"}')}) as server:
        result = run(HEALTHCHECK, ["PORT_UNDER_TEST", "1"], {"PORT_UNDER_TEST": port_of(server.url)})
    assert result.returncode == 0, result.stderr
    assert "answered 200" in result.stdout
    assert server.requests == ["/health"]


def test_the_default_port_is_used_when_the_variable_is_unset() -> None:
    with loopback({"/health": Answer(200)}) as server:
        result = run(HEALTHCHECK, ["PORT_UNDER_TEST", port_of(server.url)], {})
    assert result.returncode == 0, result.stderr


def test_unhealthy_while_loading() -> None:
    with loopback({"/health": Answer(503, b'{"status":"loading"}')}) as server:
        result = run(HEALTHCHECK, ["PORT_UNDER_TEST", "1"], {"PORT_UNDER_TEST": port_of(server.url)})
    assert result.returncode == 1
    assert "answered 503" in result.stderr


def test_a_redirect_is_not_health() -> None:
    answers = {"/health": Answer(302, headers={"Location": "/elsewhere"}), "/elsewhere": Answer(200)}
    with loopback(answers) as server:
        result = run(HEALTHCHECK, ["PORT_UNDER_TEST", "1"], {"PORT_UNDER_TEST": port_of(server.url)})
    assert result.returncode == 1
    assert server.requests == ["/health"]


def test_unhealthy_when_nothing_listens() -> None:
    result = run(HEALTHCHECK, ["PORT_UNDER_TEST", str(free_port())], {})
    assert result.returncode == 1
    assert "unreachable" in result.stderr


@pytest.mark.parametrize("value", ["http", "0", "70000", "-1"])
def test_a_bad_port_variable_is_reported_and_unhealthy(value: str) -> None:
    result = run(HEALTHCHECK, ["PORT_UNDER_TEST", "8000"], {"PORT_UNDER_TEST": value})
    assert result.returncode == 1, "Docker reserves exit code 2"
    assert "is not a TCP port" in result.stderr


def test_healthcheck_usage_error_is_unhealthy_too() -> None:
    result = run(HEALTHCHECK, [], {})
    assert result.returncode == 1
    assert "usage" in result.stderr
