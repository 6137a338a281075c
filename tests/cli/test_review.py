"""`codereview review` and `codereview functions` against the real stack, read by output and exit code."""

from __future__ import annotations

import json

import httpx
import pytest

from analyzer.app import create_app
from tests.analyzer.helpers import settings_without_gateway
from tests.analyzer.stores import job_stores, put_ready_job
from tests.cli.conftest import Result, Stack, run_cli
from tests.support.ports import free_port
from tests.support.servers import serving

# One stack for the module's tests (tests/cli/conftest.py `stack`): in its loop, on one worker.
pytestmark = [
    pytest.mark.nats,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("cli-review"),
]

FILES: dict[str, str | bytes] = {
    "README.md": "# demo\n",
    "src/demo/__init__.py": "def version():\n    return '1.0'\n",
    "src/demo/mod.py": (
        "class Parser:\n"
        "    def parse(self, text):\n"
        "        return text.split()\n\n\n"
        "def mean(values=[]):\n"
        "    return sum(values) / len(values)\n"
    ),
}
MODEL_SAYS = "Check the inputs before using them."


def numbered(result: Result) -> list[str]:
    """The suggestions of a text answer: the lines `  N. text` in order, as text."""
    lines = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    texts = []
    for number, line in enumerate(lines, 1):
        prefix = f"{number}. "
        assert line.startswith(prefix), result.stdout
        texts.append(line[len(prefix) :])
    return texts


async def test_review_prints_the_suggestions_as_a_numbered_list(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", FILES)
    result = await run_cli("review", "https://github.com/octo/demo", "demo.mod.mean", *stack.options())
    assert result.code == 0, result.stderr
    heading = result.stdout.splitlines()[0]
    assert heading.startswith("demo.mod.mean in octo/demo@")
    # The same review the HTTP API gives (the gateway's cache answers it again).
    async with httpx.AsyncClient(base_url=stack.analyzer_url, timeout=60) as client:
        job = (await client.post("/analyze/start", json={"repo_url": "https://github.com/octo/demo"})).json()
        api = await client.post(
            "/analyze/function", json={"job_id": job["job_id"], "function_name": "demo.mod.mean"}
        )
    assert numbered(result) == api.json()["suggestions"]
    assert MODEL_SAYS in numbered(result)
    assert any("mutable default" in s for s in numbered(result))
    assert heading.endswith(f": {len(numbered(result))} suggestions")
    assert "2 Python files fetched" in result.stderr
    assert "Traceback" not in result.stderr


async def test_json_says_how_progress_was_followed_and_fail_on_suggestions_exits_1(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", FILES)
    with_events = await run_cli(
        "review",
        "https://github.com/octo/demo",
        "Parser.parse",
        "--json",
        "--fail-on-suggestions",
        *stack.options(),
    )
    assert with_events.code == 1, with_events.stderr
    answer = json.loads(with_events.stdout)
    assert answer["progress_from"] == "nats"
    assert answer["function_name"] == "Parser.parse"
    assert answer["repo"] == "octo/demo"
    assert MODEL_SAYS in answer["suggestions"]
    assert with_events.stderr == ""

    # NATS out of reach: the job record is polled instead, and the review is the same.
    polled = await run_cli(
        "review",
        "https://github.com/octo/demo",
        "Parser.parse",
        "--json",
        env={"CODEREVIEW_ANALYZER_URL": stack.analyzer_url, "NATS_URL": f"nats://127.0.0.1:{free_port()}"},
    )
    assert polled.code == 0, polled.stderr
    assert json.loads(polled.stdout)["progress_from"] == "polling"
    assert json.loads(polled.stdout)["suggestions"] == answer["suggestions"]


async def test_a_name_not_found_offers_close_names_and_the_listing_exits_3(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", FILES)
    result = await run_cli("review", "https://github.com/octo/demo", "demo.mod.Parser.pars", *stack.options())
    assert result.code == 3
    # What was fetched, then the error: one line.
    fetched, error_line = result.stderr.strip().splitlines()
    assert "2 Python files fetched" in fetched
    assert error_line.startswith("codereview: analyzer at http://127.0.0.1:")
    assert "404: no function 'demo.mod.Parser.pars'" in error_line
    assert "close names: demo.mod.Parser.parse" in error_line
    assert error_line.endswith(" pars")
    assert "list the names with: codereview functions " in error_line
    assert result.stdout == ""

    as_json = await run_cli(
        "review", "https://github.com/octo/demo", "demo.mod.Parser.pars", "--json", *stack.options()
    )
    assert as_json.code == 3
    error = json.loads(as_json.stdout)["error"]
    assert (error["service"], error["status"], error["exit_code"]) == ("analyzer", 404, 3)
    assert error["did_you_mean"][0] == "demo.mod.Parser.parse"
    # The same line on stderr (its job is a new one), nothing else.
    assert as_json.stderr.strip() == f"codereview: {error['message']}"
    assert error["message"].endswith(f"codereview functions {error['job_id']} pars")


async def test_functions_lists_names_that_review_takes(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", FILES)
    started = await run_cli(
        "review", "https://github.com/octo/demo", "demo.version", "--json", *stack.options()
    )
    job_id = json.loads(started.stdout)["job_id"]

    listed = await run_cli("functions", job_id, "--analyzer-url", stack.analyzer_url)
    assert listed.code == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows == [
        ["demo.version", "src/demo/__init__.py:1"],
        ["mod.Parser", "src/demo/mod.py:1"],
        ["mod.Parser.parse", "src/demo/mod.py:2"],
        ["mod.mean", "src/demo/mod.py:6"],
    ]
    filtered = await run_cli(
        "functions", job_id, "PARS", "--limit", "1", "--analyzer-url", stack.analyzer_url
    )
    assert filtered.stdout.split() == ["mod.Parser", "src/demo/mod.py:1"]
    assert "more with --cursor" in filtered.stderr
    every = await run_cli(
        "functions", job_id, "pars", "--limit", "1", "--all", "--json", "--analyzer-url", stack.analyzer_url
    )
    page = json.loads(every.stdout)
    assert [f["full_name"] for f in page["functions"]] == ["demo.mod.Parser", "demo.mod.Parser.parse"]
    assert page["next_cursor"] is None

    # A listed short name is one review takes.
    reviewed = await run_cli("review", "https://github.com/octo/demo", "mod.mean", *stack.options())
    assert reviewed.code == 0, reviewed.stderr

    unknown = await run_cli("functions", "0" * 32, "--analyzer-url", stack.analyzer_url)
    assert unknown.code == 3
    assert f"404: no job '{'0' * 32}'" in unknown.stderr


async def test_failed_job_bad_url_and_a_stack_that_is_not_there(stack: Stack) -> None:
    missing = await run_cli("review", "https://github.com/octo/gone", "app.main", *stack.options())
    assert missing.code == 4
    assert "failed: " in missing.stderr
    assert "octo/gone: it does not exist, or it is private" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    bad_url = await run_cli("review", "https://gitlab.com/octo/demo", "app.main", *stack.options())
    assert bad_url.code == 2
    assert "422" in bad_url.stderr

    nobody = f"http://127.0.0.1:{free_port()}"
    down = await run_cli("review", "https://github.com/octo/demo", "app.main", "--analyzer-url", nobody)
    assert down.code == 4
    assert down.stderr.strip() == (
        f"codereview: analyzer at {nobody}: cannot connect (All connection attempts failed); "
        "is the stack running (python3 dev.py up)? Or point --analyzer-url / CODEREVIEW_ANALYZER_URL at it"
    )


async def test_an_analyzer_with_keys_wants_one_and_the_cli_sends_it(nats_url: str) -> None:
    # The analyzer in this process (the CLI a process of its own), with a job already fetched.
    async with job_stores(nats_url) as stores:
        job = await put_ready_job(stores, {"src/demo/__init__.py": "def version():\n    return '1.0'\n"})
    settings = settings_without_gateway(nats_url, codereview_api_keys="cli-key-0123")
    async with serving(create_app(settings)) as url:
        without = await run_cli("functions", job.job_id, "--analyzer-url", url)
        listed = await run_cli(
            "functions", job.job_id, "--analyzer-url", url, env={"CODEREVIEW_API_KEY": "cli-key-0123"}
        )
    assert without.code == 2
    [line] = without.stderr.strip().splitlines()
    assert line.startswith(f"codereview: analyzer at {url}: 401: this analyzer requires an API key")
    assert line.endswith("give the key with CODEREVIEW_API_KEY (or --api-key)")
    assert listed.code == 0, listed.stderr
    assert [row.split() for row in listed.stdout.splitlines()] == [["demo.version", "src/demo/__init__.py:1"]]
