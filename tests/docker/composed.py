"""Run the stack as compose and the images configure it, as processes on loopback.

No Docker engine runs here, so this is the closest thing to `docker compose up`: each service
gets the environment its image sets plus what docker-compose.yml gives it, and nothing else (no
.env, no variables from this shell, a working folder without code); it starts in compose's
dependency order once what it depends on passes the image's own HEALTHCHECK command, and cannot
import what the image's builder uninstalled (docker/Dockerfile's PRUNED). Only what must differ on
a shared machine is rewritten: service host names become 127.0.0.1, ports become
free ones, `nats:4222` becomes the given nats-server, /models becomes a local folder, and the
model hub is a closed port on loopback: the image's build-time `catalogue bake` fails to download
at once, as on a machine without internet, and model_host serves the bundled model and says so
(no test or benchmark downloads half a gigabyte).
Used by tests/docker/test_compose_on_loopback.py and bench/compose_startup.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.docker.dockerfile import Stage
from tests.docker.project import (
    ROOT,
    RUNTIME_ENV,
    SERVICES,
    compose,
    environment,
    interpolate,
    modules_of,
    pruned,
    service_image,
)
from tests.support.ports import free_port

START_TIMEOUT_S = 180.0
# Nothing listens on port 9 (discard) here: every connection is refused at once.
OFFLINE_MODEL_HUB = "http://127.0.0.1:9"


def composed(*files: Path, profiles: bool = False) -> dict[str, dict[str, Any]]:
    """The services `docker compose -f ... up` starts (no profile active; `profiles`: every
    profile's too), overrides merged shallowly."""
    services: dict[str, dict[str, Any]] = {}
    for file in files:
        for name, spec in compose(file)["services"].items():
            services[name] = {**services.get(name, {}), **spec}
    return {name: spec for name, spec in services.items() if profiles or not spec.get("profiles")}


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
    healthy_after_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def image(name: str) -> Stage:
    return service_image(name).final


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
    for key, value in env.items():  # MODEL_CACHE_DIR, or a MODEL_PATH set in compose
        if value == "/models" or value.startswith("/models/"):
            env[key] = str(models / Path(value).relative_to("/models"))
    if name == "model_host":
        env["MODEL_HUB_URL"] = OFFLINE_MODEL_HUB
    return env, port


async def pull_model_as_the_image_build_does(models: Path) -> int:
    """The model stage's `python -m model_host.catalogue bake "$MODEL" --cache-dir /models`.

    Offline (OFFLINE_MODEL_HUB), as a build without internet: returns the exit code (0: the build
    goes on) and leaves the record of why in `models`; model_host then serves the bundled model.
    """
    default = image("model_host").effective_env()["MODEL"]
    pull = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "model_host.catalogue",
        "bake",
        default,
        "--cache-dir",
        str(models),
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "MODEL_HUB_URL": OFFLINE_MODEL_HUB},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await pull.wait()


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


def without_modules(folder: Path, modules: frozenset[str]) -> Path:
    """A folder whose sitecustomize makes `modules` unimportable, as if not installed, in every
    Python process that has it on PYTHONPATH (and so in the children a service spawns too)."""
    folder.mkdir(parents=True, exist_ok=True)
    # None in sys.modules: `import x` and `import x.y` raise ModuleNotFoundError, find_spec is None.
    (folder / "sitecustomize.py").write_text(
        f"import sys\n\nsys.modules.update(dict.fromkeys({sorted(modules)!r}))\n"
    )
    return folder


@asynccontextmanager
async def start(
    name: str, env: dict[str, str], port: int, workdir: Path, logs: Path, poll_s: float = 0.3
) -> AsyncIterator[Running]:
    """Run `python -m <package>` as its container would, without what its image's builder
    uninstalled; yield once the image's HEALTHCHECK passes.

    Raises AssertionError with the end of its log if it exits or is not healthy in time.
    `Running.healthy_after_s` is how long that took, probes included.
    """
    package = SERVICES[name].package
    log = logs / f"compose-{name}-{port}.log"
    blocker = without_modules(logs / f"compose-{name}-{port}-pruned", modules_of(pruned(name)))
    full = {
        **env,
        # What the image's PATH, PYTHONPATH and WORKDIR give: the venv's tools, the code, no .env.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}",
        "PYTHONUNBUFFERED": "1",
        # The image's user has no home folder (--home-dir /nonexistent): nothing may rely on one.
        "HOME": str(workdir / "nonexistent"),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", package], cwd=workdir, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    service = Running(name, port, full, process, log)
    started = time.monotonic()
    try:
        deadline = started + START_TIMEOUT_S
        while not await healthcheck_passes(name, service):
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
            await asyncio.sleep(poll_s)
        service.healthy_after_s = time.monotonic() - started
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
