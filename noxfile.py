"""Sessions: tests, lint, typecheck, stack, bench.

They run in the project's own environment (.venv, made by `python3 dev.py setup` from
poetry.lock) instead of building one per session: llama.cpp compiles from source on install,
and one locked environment is what CI and the stack must agree on anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True

# The tools of the environment nox itself runs in (.venv), whether or not it is activated.
BIN = str(Path(sys.executable).parent)


def use_project_env(session: nox.Session) -> None:
    session.env["PATH"] = BIN + os.pathsep + os.environ.get("PATH", "")
    session.env["VIRTUAL_ENV"] = str(Path(BIN).parent)


def tool(name: str) -> str:
    """A program of the project environment, by full path (nox looks programs up on its own PATH)."""
    return str(Path(BIN) / name)


PACKAGES = [
    "jobs_contract",
    "review_contract",
    "servicekit",
    "model_host",
    "gateway",
    "fetcher",
    "analyzer",
    "codereview",
    "devstack",
    "bench",
    "tests",
]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    use_project_env(session)
    session.run(tool("ruff"), "check", ".")
    session.run(tool("ruff"), "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package, tests included."""
    use_project_env(session)
    session.run(tool("mypy"), "--strict", *[arg for package in PACKAGES for arg in ("-p", package)])
    session.run(tool("mypy"), "--strict", "dev.py", "noxfile.py", "docker/healthcheck.py")


# Most tests wait (servers starting, timeouts, subprocesses) more than they compute, so several
# run at once: TEST_WORKERS worker processes (pytest-xdist), each with its own nats-server, ports
# and folders; tests of one `xdist_group` share a worker. Measured in docs/benchmarks.md.
WORKERS = os.environ.get("TEST_WORKERS", "6")


def marked(posargs: list[str], expression: str) -> list[str]:
    """`posargs` with `expression` and-ed to their `-m` (or as the `-m`, when they have none)."""
    args, chosen, rest = [], None, iter(posargs)
    for arg in rest:
        if arg == "-m":
            chosen = next(rest, "")
        elif arg.startswith("-m") and not arg.startswith("--"):
            chosen = arg[2:]
        else:
            args.append(arg)
    return ["-m", f"({chosen}) and {expression}" if chosen else expression, *args]


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests, against a real nats-server and the real bundled model.

    In parallel workers first; then the tests marked `alone` (tight wall-clock bounds) by
    themselves, so that the load of the others cannot break a bound. Exit code 5 (nothing
    selected: arguments that pick tests of one kind only) passes."""
    use_project_env(session)
    # The tests start a few hundred Python processes (workers, services, the CLI, parse workers),
    # and a machine or CI image with PYTHONDONTWRITEBYTECODE set makes every one of them compile
    # the project from source again, and pytest rewrite every test module in every worker: two
    # minutes of CPU per run on 2 cores. The bytecode goes to __pycache__/, which git ignores.
    session.env["PYTHONDONTWRITEBYTECODE"] = None
    session.run(
        tool("pytest"),
        "-n",
        WORKERS,
        "--dist",
        "loadgroup",
        *marked(session.posargs, "not alone"),
        success_codes=[0, 5],
    )
    # The whole command collects only the modules that hold `alone` tests (tests/conftest.py
    # refuses an `alone` test whose module does not say `pytest.mark.alone`): 2 s less.
    modules = [] if session.posargs else alone_modules()
    session.run(tool("pytest"), *marked(session.posargs, "alone"), "-n", "0", *modules, success_codes=[0, 5])


def alone_modules() -> list[str]:
    """The test modules whose text marks a test `alone`."""
    return sorted(
        str(path) for path in Path("tests").rglob("test_*.py") if "pytest.mark.alone" in path.read_text()
    )


@nox.session
def stack(session: nox.Session) -> None:
    """NATS, model_host, gateway, fetcher and analyzer on this machine; Ctrl-C stops them."""
    use_project_env(session)
    # Ctrl-C goes to the stack, which stops the services in order: give it time to.
    session.run(
        tool("python"), "-m", "devstack", *session.posargs, interrupt_timeout=60, terminate_timeout=30
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; each prints its figures. `-- NAME` runs one."""
    use_project_env(session)
    session.run(tool("python"), "-m", "bench", *session.posargs)
