"""The CLI against the real stack: nats-server, fetcher, analyzer and gateway processes on loopback.

GitHub is the fake GitHub, and the gateway's provider is a fake OpenAI (the gateway itself, with
its ruff checks, is real). The CLI runs as `python -m codereview`, a process of its own, read
by its output and exit code as a person or a script would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.fake_github import FakeGitHub
from tests.support.fake_llm import FakeLLM, served_fake_llm
from tests.support.nats import running_nats_server
from tests.support.servers import ROOT, service_process

# What a person's shell may hold that would point the CLI (or a service) somewhere else.
_LEAKY = ("CODEREVIEW_", "NATS_URL", "LLM_", "OPENAI_", "DEEPSEEK_", "LOCAL_LLM_", "GATEWAY_", "ANALYZER_")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY)}
# The same, blanked for the services (they also read a .env file, which the environment overrides).
BLANK = {k: "" for k in os.environ if k.startswith(_LEAKY)}


@dataclass(frozen=True)
class Stack:
    nats_url: str
    analyzer_url: str
    gateway_url: str
    github: FakeGitHub
    llm: FakeLLM

    def options(self) -> list[str]:
        return ["--analyzer-url", self.analyzer_url, "--nats-url", self.nats_url]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> Result:
    """`python -m codereview ARGS` as a process (the test's loop keeps serving the fakes meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codereview",
        *args,
        cwd=ROOT,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """The gateway's provider: a fake OpenAI on loopback, recording what the gateway sends."""
    async with served_fake_llm() as fake:
        yield fake


def gateway_env(llm: FakeLLM) -> dict[str, str]:
    """The gateway's settings: its provider the fake OpenAI `llm`, no retries."""
    return {
        **BLANK,
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-cli",
        "OPENAI_BASE_URL": llm.url + "/v1",
        "LLM_MAX_RETRIES": "0",
    }


@pytest.fixture
def gateway(llm: FakeLLM, service_logs: Path) -> Iterator[str]:
    """The real gateway as a process, its provider the fake OpenAI; yields its base URL."""
    with service_process("gateway", gateway_env(llm), service_logs, port_variable="GATEWAY_PORT") as process:
        yield process.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, service_logs: Path) -> AsyncIterator[Stack]:
    """The whole stack, started once for the tests of a module, as a person's commands share one:
    its own nats-server, fake GitHub and fake provider. The fake provider is served by the module's
    event loop, so a module that uses this runs its tests in that loop and keeps them on one worker:
    `pytest.mark.asyncio(loop_scope="module")` and an `xdist_group`. What a test adds to it
    (repositories, jobs) stays; each test names its own or sets what it reads again.

    The three service processes cost about 3 s of CPU to start; once per module, not per test."""
    async with AsyncExitStack() as stack:
        nats_url = stack.enter_context(running_nats_server(tmp_path_factory.mktemp("jetstream")))
        github = stack.enter_context(FakeGitHub.running())
        llm = await stack.enter_async_context(served_fake_llm())
        gateway = stack.enter_context(
            service_process("gateway", gateway_env(llm), service_logs, port_variable="GATEWAY_PORT")
        )
        common = {**BLANK, "NATS_URL": nats_url}
        analyzer = stack.enter_context(
            service_process(
                "analyzer",
                {**common, "GATEWAY_URL": gateway.url + "/v1", "ANALYZER_WARM_INDEX": "false"},
                service_logs,
                port_variable="ANALYZER_PORT",
            )
        )
        # After the analyzer, which provisions the streams the fetcher checks.
        stack.enter_context(
            service_process(
                "fetcher",
                {**common, "GITHUB_API_URL": github.api_url, "FETCHER_RETRY_BACKOFF_S": "0.05"},
                service_logs,
                port_variable="FETCHER_HEALTH_PORT",
            )
        )
        yield Stack(nats_url, analyzer.url, gateway.url, github, llm)


async def watching(nats_url: str, *args: str) -> asyncio.subprocess.Process:
    """`codereview watch ARGS` on `nats_url` as a process, once it says it is subscribed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codereview",
        "watch",
        "--nats-url",
        nats_url,
        *args,
        cwd=ROOT,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        ready = await process.stderr.readline()
    assert ready.decode().startswith("watching codereview.jobs."), ready
    return process
