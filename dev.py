#!/usr/bin/env python3
"""One entry point for people and CI: set up, start the stack, run the checks.

    python3 dev.py up      # install what is missing, then start the whole local stack
    python3 dev.py test    # install what is missing, then lint, type-check and run every test
    python3 dev.py setup   # only install (poetry in .tools/, the project in .venv/)
    python3 dev.py bench   # the benchmarks; prints figures

Only the standard library is used here, so it runs on a fresh machine with Python 3.11+.
Installs are skipped when the lock file has not changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools" / "poetry"
VENV = ROOT / ".venv"
POETRY_VERSION = "2.5.1"
MIRROR_PLUGIN_VERSION = "0.6.5"
STAMP = VENV / ".codereview-installed"
BIN = "Scripts" if os.name == "nt" else "bin"

COMMANDS = {
    "setup": [],
    "up": ["python", "-m", "devstack"],
    "test": ["nox", "-s", "lint", "typecheck", "tests"],
    # Everything after the command (benchmark names, their options) goes to the session as posargs.
    "bench": ["nox", "-s", "bench", "--"],
}


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def poetry_env() -> dict[str, str]:
    """Environment for poetry: venv inside the project, and the package index pip itself uses.

    poetry's own PyPI client needs per-release JSON routes that some registries and mirrors do
    not serve; the pypi-mirror plugin points it at the simple index pip already uses. Nothing of
    this is written into the repository, so the lock file stays free of registry addresses.
    """
    from pip._internal.models.index import PyPI  # pip ships with every CPython 3.11+

    env = dict(os.environ)
    env.setdefault("POETRY_PYPI_MIRROR_URL", PyPI.simple_url)
    env["POETRY_VIRTUALENVS_IN_PROJECT"] = "true"
    env["POETRY_VIRTUALENVS_CREATE"] = "true"
    env["POETRY_NO_INTERACTION"] = "1"
    # llama.cpp is compiled on install; use every core the machine has.
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    return env


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    say("$ " + " ".join(cmd))
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        say(f"failed with exit code {result.returncode}: {' '.join(cmd)}")
        sys.exit(result.returncode)


def ensure_poetry() -> Path:
    poetry = TOOLS / BIN / "poetry"
    marker = TOOLS / f".poetry-{POETRY_VERSION}-{MIRROR_PLUGIN_VERSION}"
    if poetry.exists() and marker.exists():
        return poetry
    say(f"installing poetry {POETRY_VERSION} into {TOOLS.relative_to(ROOT)}/")
    venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
    pip = [str(TOOLS / BIN / "python"), "-m", "pip", "install", "--quiet"]
    run([*pip, "--upgrade", "pip"])
    run(
        [
            *pip,
            f"poetry=={POETRY_VERSION}",
            f"poetry-plugin-pypi-mirror=={MIRROR_PLUGIN_VERSION}",
        ]
    )
    marker.touch()
    return poetry


def lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "poetry.lock"):
        path = ROOT / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def ensure_project() -> None:
    poetry = ensure_poetry()
    env = poetry_env()
    if not (ROOT / "poetry.lock").exists():
        run([str(poetry), "lock"], env)
    digest = lock_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    say("installing the project into .venv/ (the first time compiles llama.cpp: a few minutes)")
    # Every group: each service's own, the CLI, the local stack and the dev tools (images take
    # only main and their service's group).
    run([str(poetry), "sync", "--all-groups", "--all-extras"], env)
    STAMP.write_text(digest)


def main(argv: list[str]) -> int:  # noqa: RET503 - ends in execve
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    ensure_project()
    if not COMMANDS[argv[1]]:
        say("ready: .venv/ holds the project; `python3 dev.py up` starts the stack")
        return 0
    tool, *args = COMMANDS[argv[1]]
    executable = str(VENV / BIN / tool)
    env = dict(os.environ)
    env["PATH"] = str(VENV / BIN) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(VENV)
    cmd = [executable, *args, *argv[2:]]
    say("$ " + " ".join(cmd[0:1] + cmd[1:]))
    os.chdir(ROOT)
    # Hand over signals (Ctrl-C) and the exit code to the tool itself.
    os.execve(executable, cmd, env)  # noqa: S606


if __name__ == "__main__":
    sys.exit(main(sys.argv))
