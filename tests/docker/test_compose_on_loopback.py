"""The stack exactly as compose and the images configure it, run here as processes on loopback.

No Docker engine runs here, so this is the closest thing to `docker compose up`: each service
gets the environment its image sets plus what docker-compose.yml gives it, and nothing else (no
.env, no variables from this shell); it starts in compose's dependency order once what it
depends on passes the image's own HEALTHCHECK command; model_host serves the model that
fetch_model.py put in place as the image build does. Only what must differ on a shared machine
is rewritten: service host names become 127.0.0.1, ports become free ones, `nats:4222` becomes a
fresh nats-server, /models becomes a temporary folder.

The shell is the README's `LLM_PROVIDER=openai OPENAI_API_KEY=... docker compose up`, with
OPENAI_BASE_URL at a recording fake OpenAI: a review then goes fake GitHub -> fetcher ->
analyzer -> gateway -> "OpenAI" in seconds (the real model answers too slowly on a shared
2-core machine for a review; it is asked for a few tokens directly instead). Run once with the
default file, where model_host starts and must be healthy before the gateway, and once with
docker/without-model-host.yml, where the stack comes up without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.docker.dockerfile import Stage
from tests.docker.project import (
    COMPOSE_FILE,
    ROOT,
    RUNTIME_ENV,
    SERVICES,
    WITHOUT_MODEL_HOST,
    compose,
    dockerfile,
    environment,
    interpolate,
)
from tests.support.fake_github import FakeGitHub
from tests.support.fake_llm import FakeLLM, review_reply
from tests.support.ports import free_port
from tests.support.servers import serving

pytestmark = [pytest.mark.nats, pytest.mark.model, pytest.mark.slow]

START_TIMEOUT_S = 180.0


def composed(*files: Path) -> dict[str, dict[str, Any]]:
    """The services `docker compose -f ... up` starts (no profile active), overrides merged shallowly."""
    services: dict[str, dict[str, Any]] = {}
    for file in files:
        for name, spec in compose(file)["services"].items():
            services[name] = {**services.get(name, {}), **spec}
    return {name: spec for name, spec in services.items() if not spec.get("profiles")}


def start_order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Our services in an order where each comes after everything it depends on (that runs)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        if name in order or name == "nats":
            return
        for target, condition in (services[name].get("depends_on") or {}).items():
            if target in services:
                visit(target, (*path, name))
            else:
                assert condition.get("required") is False, f"{name} needs {target}, which does not run"
        order.append(name)

    for name in sorted(set(services) & set(SERVICES)):
        visit(name, ())
    return order


@dataclass
class Running:
    name: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def image(name: str) -> Stage:
    return dockerfile(f"docker/{name}.Dockerfile").final


def container_env(
    name: str,
    spec: dict[str, Any],
    running: dict[str, Running],
    nats_url: str,
    models: Path,
    shell: dict[str, str],
) -> tuple[dict[str, str], int]:
    """The service's environment as its container would have it, rewritten for loopback; and its port."""
    facts = SERVICES[name]
    env = {key: value for key, value in image(name).effective_env().items() if key not in RUNTIME_ENV}
    for key, value in environment(spec).items():
        if value is None:  # passed through from the shell when set there
            if key in shell:
                env[key] = shell[key]
            continue
        env[key] = interpolate(value, shell)
    port = free_port()
    env[facts.host_field.upper()] = "127.0.0.1"
    env[facts.port_field.upper()] = str(port)
    for key, value in env.items():
        if "://" not in value:
            continue
        url = urlsplit(value)
        if url.hostname == "nats":
            env[key] = nats_url
        elif url.hostname in running:
            env[key] = urlunsplit(url._replace(netloc=f"127.0.0.1:{running[url.hostname].port}"))
    if "MODEL_PATH" in env:
        env["MODEL_PATH"] = str(models / Path(env["MODEL_PATH"]).relative_to("/models"))
    return env, port


async def healthcheck_passes(name: str, service: Running) -> bool:
    """The image's own HEALTHCHECK command, with the script from this checkout."""
    health = image(name).effective_healthcheck()
    assert health is not None
    _, command = health
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "docker" / "healthcheck.py"),
        *command[2:],
        env=service.env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(probe.wait(), 30) == 0


@asynccontextmanager
async def start(
    name: str, env: dict[str, str], port: int, workdir: Path, logs: Path
) -> AsyncIterator[Running]:
    package = SERVICES[name].package
    full = {
        **env,
        # What the image's PATH, PYTHONPATH and WORKDIR give: the venv's tools, the code, no .env.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "HOME": str(workdir),
    }
    log = logs / f"compose-{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", package], cwd=workdir, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    service = Running(name, port, full, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await healthcheck_passes(name, service):
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
            await asyncio.sleep(0.3)
        yield service
    finally:
        if process.poll() is None:
            process.terminate()
            for _ in range(200):  # up to 20 s for a clean stop, without blocking the loop
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                process.kill()
                process.wait()


def test_start_order_puts_every_dependency_first() -> None:
    order = start_order(composed(COMPOSE_FILE))
    assert order.index("model_host") < order.index("gateway") < order.index("analyzer")
    assert order.index("fetcher") < order.index("analyzer")
    assert "model_host" not in start_order(composed(COMPOSE_FILE, WITHOUT_MODEL_HOST))


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeLLM]:
    fake = FakeLLM(models=["gpt-4o-mini"])
    async with serving(fake) as url:
        fake.url = url
        yield fake


@pytest.mark.parametrize(
    "files", [(COMPOSE_FILE,), (COMPOSE_FILE, WITHOUT_MODEL_HOST)], ids=["default", "override"]
)
async def test_the_composed_stack_comes_up_healthy_and_reviews_a_function(
    files: tuple[Path, ...],
    nats_url: str,
    fake_github: FakeGitHub,
    fake_openai: FakeLLM,
    service_logs: Path,
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    fetch = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "docker" / "fetch_model.py"), str(models), env={"PATH": os.environ["PATH"]}
    )
    assert await fetch.wait() == 0
    workdir = tmp_path / "app"
    workdir.mkdir()
    # The user's shell: `LLM_PROVIDER=openai OPENAI_API_KEY=... docker compose up`, with OpenAI and
    # GitHub at their fakes' addresses.
    shell = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-compose-test",
        "OPENAI_BASE_URL": f"{fake_openai.url}/v1",
        "GITHUB_API_URL": fake_github.api_url,
    }
    fake_github.add_repo("octo", "demo", {"demo/calc.py": "def add(a, b):\n    return a+b\n"})
    fake_openai.script("chat/completions", review_reply("Check that both arguments are numbers."))

    services = composed(*files)
    running: dict[str, Running] = {}
    async with AsyncExitStack() as stack:
        for name in start_order(services):
            env, port = container_env(name, services[name], running, nats_url, models, shell)
            running[name] = await stack.enter_async_context(start(name, env, port, workdir, service_logs))
        assert ("model_host" in running) is (len(files) == 1)

        async with httpx.AsyncClient(timeout=120) as client:
            if "model_host" in running:
                model_host = running["model_host"].url
                listed = (await client.get(f"{model_host}/v1/models")).json()
                assert [model["id"] for model in listed["data"]] == ["SmolLM2-135M-Instruct.Q4_1"]
                answer = await client.post(
                    f"{model_host}/v1/chat/completions",
                    json={
                        "model": "SmolLM2-135M-Instruct.Q4_1",
                        "messages": [{"role": "user", "content": "Hi"}],
                        "max_tokens": 2,
                    },
                )
                assert answer.status_code == 200, answer.text

            analyzer = running["analyzer"].url
            started = await client.post(
                f"{analyzer}/analyze/start", json={"repo_url": "https://github.com/octo/demo"}
            )
            assert started.status_code == 200, started.text
            assert set(started.json()) == {"job_id"}
            reviewed = await client.post(
                f"{analyzer}/analyze/function",
                json={"job_id": started.json()["job_id"], "function_name": "demo.calc.add"},
            )
            assert reviewed.status_code == 200, reviewed.text
            assert set(reviewed.json()) == {"suggestions"}
            assert "Check that both arguments are numbers." in reviewed.json()["suggestions"]

    (sent,) = fake_openai.sent("chat/completions")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-compose-test"
    assert sent.json()["model"] == "gpt-4o-mini"
    assert "return a+b" in json.dumps(sent.json()["messages"])
