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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fake_github import FakeGitHub
from tests.support.fake_llm import FakeLLM, served_fake_llm
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


@pytest.fixture
def gateway(llm: FakeLLM, service_logs: Path) -> Iterator[str]:
    """The real gateway as a process, its provider the fake OpenAI; yields its base URL."""
    env = {
        **BLANK,
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-cli",
        "OPENAI_BASE_URL": llm.url + "/v1",
        "LLM_MAX_RETRIES": "0",
    }
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as process:
        yield process.url


@pytest.fixture
def stack(
    nats_url: str, fake_github: FakeGitHub, llm: FakeLLM, gateway: str, service_logs: Path
) -> Iterator[Stack]:
    common = {**BLANK, "NATS_URL": nats_url}
    with ExitStack() as services:
        analyzer = services.enter_context(
            service_process(
                "analyzer",
                {**common, "GATEWAY_URL": gateway + "/v1", "ANALYZER_WARM_INDEX": "false"},
                service_logs,
                port_variable="ANALYZER_PORT",
            )
        )
        # After the analyzer, which provisions the streams the fetcher checks.
        services.enter_context(
            service_process(
                "fetcher",
                {**common, "GITHUB_API_URL": fake_github.api_url, "FETCHER_RETRY_BACKOFF_S": "0.05"},
                service_logs,
                port_variable="FETCHER_HEALTH_PORT",
            )
        )
        yield Stack(nats_url, analyzer.url, gateway, fake_github, llm)


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
