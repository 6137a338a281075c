"""Sessions: tests, lint, typecheck, stack, bench.

They run in the project's own environment (.venv, made by `python3 dev.py setup` from
poetry.lock) instead of building one per session: llama.cpp compiles from source on install,
and one locked environment is what CI and the stack must agree on anyway.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True

PACKAGES = ["jobs_contract", "model_host", "gateway", "fetcher", "analyzer", "devstack", "bench", "tests"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package, tests included."""
    session.run("mypy", "--strict", *[arg for package in PACKAGES for arg in ("-p", package)])
    session.run("mypy", "--strict", "dev.py", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests, against a real nats-server and the real bundled model."""
    session.run("pytest", *session.posargs)


@nox.session
def stack(session: nox.Session) -> None:
    """NATS, model_host, gateway, fetcher and analyzer on this machine; Ctrl-C stops them."""
    # Ctrl-C goes to the stack, which stops the services in order: give it time to.
    session.run("python", "-m", "devstack", *session.posargs, interrupt_timeout=60, terminate_timeout=30)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; each prints its figures. `-- NAME` runs one."""
    session.run("python", "-m", "bench", *session.posargs)
