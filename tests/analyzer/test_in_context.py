"""A function of a repository reviewed in its module: the real analyzer, the real gateway (ruff),
the real type checker, a real nats-server. The model is not asked (the gateway's policy for a
135M model), so every suggestion is a check's and each can be asserted exactly."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from analyzer.app import create_app
from analyzer.settings import Settings
from gateway.app import create_app as create_gateway
from tests.analyzer.stores import job_stores, put_ready_job
from tests.gateway.conftest import make_settings
from tests.support.servers import serving

pytestmark = pytest.mark.nats

VIEWS = """\
from shop.models import find_user, load


def greet(user_id: int) -> str:
    return "Hello " + find_user(user_id).name


def read() -> str:
    return load("data.txt")


def total(items: list[int]) -> int:
    return sum(items) + undefined_thing


def run(expression):
    return eval(expression)


def fine(user_id: int) -> str:
    user = find_user(user_id)
    return user.name if user is not None else "nobody"
"""
MODELS = '''\
class User:
    """A user."""

    def __init__(self, name: str) -> None:
        self.name = name


def find_user(user_id: int) -> User | None:
    """The user with this id, if there is one."""
    return None if user_id < 0 else User("ada")


def load(path: str, strict: bool) -> str:
    """The file's text."""
    return path if strict else ""
'''
FILES = {"shop/__init__.py": "", "shop/models.py": MODELS, "shop/views.py": VIEWS}
PYPROJECT = '[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nselect = ["E", "F", "B"]\n'


@asynccontextmanager
async def stack(nats_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real gateway (checks only: a 135M model id is not asked) and the analyzer in front of it."""
    gateway_settings = make_settings(llm_provider="local", local_llm_model="SmolLM2-135M-Instruct")
    async with serving(create_gateway(gateway_settings)) as gateway_url:
        settings = Settings(
            nats_url=nats_url, gateway_url=f"{gateway_url}/v1", gateway_retries=0, **overrides
        )
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            yield client


async def review(client: httpx.AsyncClient, job_id: str, name: str) -> list[str]:
    response = await client.post("/analyze/function", json={"job_id": job_id, "function_name": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["suggestions"]
    suggestions: list[str] = body["suggestions"]
    return suggestions


async def test_the_repositorys_configuration_and_its_types_decide_the_review(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES, configs={"pyproject.toml": PYPROJECT})
    async with stack(nats_url) as client:
        greet = await review(client, job.job_id, "shop.views.greet")
        read = await review(client, job.job_id, "shop.views.read")
        total = await review(client, job.job_id, "shop.views.total")
        run = await review(client, job.job_id, "shop.views.run")
        fine = await review(client, job.job_id, "shop.views.fine")
    # The repository selects E, F and B: no docstring or type-hint demands anywhere.
    everything = greet + read + total + run + fine
    assert not [s for s in everything if "docstring" in s or "type hint" in s or "return type" in s]
    # Across files, through the type checker: a possibly-None value, a missing argument.
    assert greet == [
        "Attribute name is not defined on None in union 'User | None': "
        "check that the value is not None before using it."
    ]
    assert read == ["No argument provided for required parameter strict of function load."]
    # In its module, an undefined name is a finding again (F821 was off for cut-out functions).
    assert total == ["Undefined name undefined_thing."]
    # Security is said even though the repository does not select S.
    assert run == ["Do not eval data: use ast.literal_eval or explicit parsing."]
    assert fine == []


async def test_findings_come_as_data_with_file_lines_and_stable_fingerprints(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES, configs={"pyproject.toml": PYPROJECT})
        moved = await put_ready_job(
            stores,
            {**FILES, "shop/views.py": "# a new first line\n" + VIEWS},
            configs={"pyproject.toml": PYPROJECT},
        )
    async with stack(nats_url) as client:
        first = await client.post(
            "/analyze/findings", json={"job_id": job.job_id, "function_name": "shop.views.total"}
        )
        again = await client.post(
            "/analyze/findings", json={"job_id": moved.job_id, "function_name": "shop.views.total"}
        )
    assert first.status_code == again.status_code == 200
    body = first.json()
    assert body["function"] == {
        "name": "shop.views.total",
        "path": "shop/views.py",
        "start_line": 12,
        "end_line": 13,
    }
    assert body["in_context"] is True
    assert body["suggestions"] == ["Undefined name undefined_thing."]
    [finding] = body["findings"]
    assert {k: finding[k] for k in ("rule", "path", "line", "severity", "message")} == {
        "rule": "F821",
        "path": "shop/views.py",
        "line": 13,
        "severity": "error",
        "message": "Undefined name undefined_thing.",
    }
    # One line added above: the same finding one line lower, with the same fingerprint.
    [moved_finding] = again.json()["findings"]
    assert moved_finding["line"] == 14
    assert moved_finding["fingerprint"] == finding["fingerprint"]


async def test_without_a_configuration_our_default_asks_for_hints_and_docstrings_once(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES)
    async with stack(nats_url) as client:
        run = await review(client, job.job_id, "shop.views.run")
        init = await review(client, job.job_id, "shop.models.User.__init__")
    assert run == [
        "Do not eval data: use ast.literal_eval or explicit parsing.",
        "Add type hints to the parameter expression and a return type to run.",
        "Add a docstring to run: what it does, takes and returns.",
    ]
    # A method in its class: no "should not start and end with __", no docstring demand on __init__.
    assert init == []


async def test_review_context_off_reviews_the_function_alone(nats_url: str) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES, configs={"pyproject.toml": PYPROJECT})
    async with stack(nats_url, analyzer_review_context=False) as client:
        total = await review(client, job.job_id, "shop.views.total")
    # Alone, the undefined name cannot be told from a module global; our default style applies.
    assert total == ["Add a docstring to total: what it does, takes and returns."]


async def test_a_hostile_configuration_is_logged_and_the_default_judges(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    configs = {
        # Outside the snapshot: refused; a cycle; 10 MB: not parsed.
        "pyproject.toml": '[tool.ruff]\nextend = "/etc/ruff.toml"\n',
        "shop/ruff.toml": 'extend = "../shop/ruff.toml"\nline-length = 90\n',
        "other/pyproject.toml": "[tool.ruff]\n" + "# padding\n" * 1_000_000,
    }
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES, configs=configs)
    with caplog.at_level(logging.WARNING, logger="analyzer.lintconfig"):
        async with stack(nats_url) as client:
            run = await review(client, job.job_id, "shop.views.run")
    # The cycle is cut where it closes (logged): shop/ruff.toml's own settings judge, with ruff's
    # default selection; the review answers, its security finding said.
    assert run == ["Do not eval data: use ast.literal_eval or explicit parsing."]
    assert "shop/ruff.toml" in caplog.text


async def test_a_type_check_that_times_out_leaves_the_review_without_types_and_uncached(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, FILES, configs={"pyproject.toml": PYPROJECT})
    with caplog.at_level(logging.INFO):
        async with stack(nats_url, analyzer_typecheck_timeout_s=0.001) as client:
            greet = await review(client, job.job_id, "shop.views.greet")
            again = await review(client, job.job_id, "shop.views.greet")
    assert greet == again == []
    assert "ANALYZER_TYPECHECK_TIMEOUT_S" in caplog.text
    assert caplog.text.count("DEGRADED (not cached): no type check") == 2


async def test_a_module_with_a_form_feed_is_still_reviewed_in_context(nats_url: str) -> None:
    # str.splitlines splits at a form feed, ast does not: the lines must be counted as ast does.
    views = "from shop.models import load\n\x0c\n\ndef total(items: list[int]) -> int:\n"
    views += "    return sum(items) + gone\n"
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(
            stores, {**FILES, "shop/views.py": views}, configs={"pyproject.toml": PYPROJECT}
        )
    async with stack(nats_url) as client:
        answer = await client.post(
            "/analyze/findings", json={"job_id": job.job_id, "function_name": "shop.views.total"}
        )
    assert answer.status_code == 200
    assert answer.json()["in_context"] is True
    assert answer.json()["suggestions"] == ["Undefined name gone."]
