"""End to end: fake GitHub -> real fetcher process -> two analyzer processes -> fake gateway.

Every service runs as `python -m <package>`, configured by environment only, on one real
nats-server. A job started on one analyzer is reviewed through the other: neither keeps state.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from jobs_contract import EVENTS_PREFIX, JobEvent
from tests.support.fake_gateway import DEFAULT_SUGGESTIONS, FakeGateway
from tests.support.fake_github import FakeGitHub
from tests.support.servers import ServiceProcess, service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]

MOD = (
    "# -*- coding: utf-8 -*-\r\n"
    "import functools\r\n"
    "\r\n"
    "\r\n"
    "class Parser:\r\n"
    "    @functools.lru_cache(maxsize=None)\r\n"
    "    def parse(self, text):  # keep this comment\r\n"
    "        \r\n"
    "        return text.split()\r\n"
)
FILES: dict[str, str | bytes] = {
    "README.md": "# demo\n",
    "src/demo/__init__.py": "def version():\n    return '1.0'\n",
    "src/demo/mod.py": MOD.encode(),
    "tests/test_mod.py": "def test_parse():\n    assert True\n",
}


def exact_source(text: str, qualname: str) -> str:
    """What is sent for review: the whole lines `ast` gives for the definition `qualname`
    (decorators included), the first line's indentation taken off each line."""
    tree = ast.parse(text)
    body = tree.body
    node: ast.AST | None = None
    for part in qualname.split("."):
        node = next(n for n in body if isinstance(n, ast.ClassDef | ast.FunctionDef) and n.name == part)
        body = node.body
    assert isinstance(node, ast.FunctionDef | ast.ClassDef)
    assert node.end_lineno is not None
    lines = text.splitlines(keepends=True)
    start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    first = lines[start - 1]
    indent = first[: len(first) - len(first.lstrip())]
    whole = "".join(line.removeprefix(indent) for line in lines[start - 1 : node.end_lineno])
    return whole.rstrip("\r\n")


@pytest.fixture
def services(
    nats_url: str, fake_github: FakeGitHub, service_logs: Path, gateway: FakeGateway
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    common = {"NATS_URL": nats_url, "LOG_LEVEL": "INFO"}
    with ExitStack() as stack:
        analyzer_env = {**common, "GATEWAY_URL": gateway.base_url, "ANALYZER_WAIT_TIMEOUT_S": "60"}
        first = stack.enter_context(
            service_process("analyzer", analyzer_env, service_logs, port_variable="ANALYZER_PORT")
        )
        second = stack.enter_context(
            service_process("analyzer", analyzer_env, service_logs, port_variable="ANALYZER_PORT")
        )
        # After the analyzers, which provision the streams the fetcher checks.
        stack.enter_context(
            service_process(
                "fetcher",
                {**common, "GITHUB_API_URL": fake_github.api_url, "FETCHER_RETRY_BACKOFF_S": "0.05"},
                service_logs,
                port_variable="FETCHER_HEALTH_PORT",
            )
        )
        yield first, second


async def test_a_job_started_on_one_analyzer_is_reviewed_on_the_other(
    nats_url: str,
    fake_github: FakeGitHub,
    gateway: FakeGateway,
    services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    first, second = services
    sha = fake_github.add_repo("octo", "demo", FILES)
    events: list[JobEvent] = []
    watcher = await nats.connect(nats_url)
    try:

        async def on_event(message: Msg) -> None:
            events.append(msgspec.json.decode(message.data, type=JobEvent))

        await watcher.subscribe(f"{EVENTS_PREFIX}.*.completed", cb=on_event)
        async with httpx.AsyncClient(timeout=90) as client:
            started = await client.post(
                f"{first.url}/analyze/start", json={"repo_url": "https://github.com/octo/demo"}
            )
            assert started.status_code == 200
            job_id = started.json()["job_id"]

            # Asked at once: the second analyzer waits for the fetch to finish.
            reviewed = await client.post(
                f"{second.url}/analyze/function",
                json={"job_id": job_id, "function_name": "demo.mod.Parser.parse"},
            )
            assert reviewed.status_code == 200, reviewed.text
            assert reviewed.json() == {"suggestions": DEFAULT_SUGGESTIONS}

            # The same function by its path from the repository root, through the first analyzer.
            again = await client.post(
                f"{first.url}/analyze/function",
                json={"job_id": job_id, "function_name": "src.demo.mod.Parser.parse"},
            )
            assert again.status_code == 200
            package = await client.post(
                f"{first.url}/analyze/function", json={"job_id": job_id, "function_name": "demo.version"}
            )
            assert package.status_code == 200

            job = (await client.get(f"{second.url}/analyze/jobs/{job_id}")).json()
            assert (job["status"], job["commit_sha"], job["files"]) == ("ready", sha, 3)
            missing = await client.post(
                f"{second.url}/analyze/function",
                json={"job_id": job_id, "function_name": "demo.mod.Parser.pars"},
            )
            assert missing.status_code == 404
            assert "demo.mod.Parser.parse" in missing.json()["extra"]["did_you_mean"]
        await watcher.flush()
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.05)
    finally:
        await watcher.close()

    parse_source = exact_source(MOD, "Parser.parse")
    assert parse_source.startswith("@functools.lru_cache(maxsize=None)\r\ndef parse(self, text):  # keep")
    assert [r.messages for r in gateway.requests] == [
        [{"role": "user", "content": parse_source}],
        [{"role": "user", "content": parse_source}],
        [{"role": "user", "content": "def version():\n    return '1.0'"}],
    ]
    assert all(r.model == "code-review" for r in gateway.requests)
    assert [(e.job_id, e.status) for e in events] == [(job_id, "ready")]


async def test_a_branch_and_a_missing_repository(
    fake_github: FakeGitHub, gateway: FakeGateway, services: tuple[ServiceProcess, ServiceProcess]
) -> None:
    first, second = services
    fake_github.add_repo("octo", "demo", {"app.py": "def main():\n    return 0\n"})
    fake_github.add_repo("octo", "demo", {"app.py": "def main():\n    return 1  # release\n"}, ref="v2.0")
    async with httpx.AsyncClient(timeout=90) as client:
        branch = await client.post(
            f"{first.url}/analyze/start", json={"repo_url": "https://github.com/octo/demo/tree/v2.0"}
        )
        gone = await client.post(
            f"{first.url}/analyze/start", json={"repo_url": "https://github.com/octo/gone"}
        )
        on_branch = await client.post(
            f"{second.url}/analyze/function",
            json={"job_id": branch.json()["job_id"], "function_name": "app.main"},
        )
        assert on_branch.status_code == 200
        failed = await client.post(
            f"{second.url}/analyze/function",
            json={"job_id": gone.json()["job_id"], "function_name": "app.main"},
        )
    assert failed.status_code == 409
    assert failed.json()["detail"].startswith(f"job {gone.json()['job_id']} failed: ")
    # The fetcher's reason, passed through as it is.
    assert "octo/gone: it does not exist, or it is private" in failed.json()["detail"]
    # The v2.0 source (as `ast` bounds it: the comment after the last statement is outside).
    # Whole lines: the comment on the last one is part of what the author wrote.
    assert [r.messages[0]["content"] for r in gateway.requests] == ["def main():\n    return 1  # release"]
