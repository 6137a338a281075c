"""`python -m gateway` as a real process: refuses bad settings, serves, and never logs a key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import ADD
from tests.support.fake_llm import FakeLLM, error_reply
from tests.support.logs import TEXT_LINE
from tests.support.servers import ROOT, service_process

CLEAN_ENV = {
    k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_", "DEEPSEEK_", "LOCAL_LLM_"))
}


def run_gateway(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), "GATEWAY_PORT": "0", **env},
        cwd=cwd,  # away from the repository's .env
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LLM_PROVIDER": "openai", "DEEPSEEK_API_KEY": "sk-never-print-me"}, "OPENAI_API_KEY"),
        ({"LLM_PROVIDER": "deepseek", "OPENAI_API_KEY": "sk-never-print-me"}, "DEEPSEEK_API_KEY"),
        (
            {"LLM_PROVIDER": "local", "LLM_FALLBACK": "openai", "DEEPSEEK_API_KEY": "sk-never-print-me"},
            "OPENAI_API_KEY",
        ),
    ],
)
def test_a_missing_key_stops_the_start_with_a_message_naming_it(
    env: dict[str, str], variable: str, tmp_path: Path
) -> None:
    result = run_gateway(env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("gateway: invalid configuration, not starting:\n")
    assert variable in result.stderr
    assert "sk-never-print-me" not in result.stderr + result.stdout


def test_an_unknown_provider_stops_the_start(tmp_path: Path) -> None:
    result = run_gateway({"LLM_PROVIDER": "anthropic"}, tmp_path)
    assert result.returncode == 2
    assert "LLM_PROVIDER: Input should be 'openai', 'deepseek' or 'local'" in result.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_service_serves_and_its_logs_never_hold_the_key(
    openai_fake: FakeLLM, service_logs: Path, log_format: str
) -> None:
    key = "sk-proj-very-secret-0123456789"
    openai_fake.script("/chat/completions", error_reply(500, f"echoing your key {key}"))
    env = {
        **{k: "" for k in os.environ if k.startswith(("LLM_", "OPENAI_", "DEEPSEEK_", "LOCAL_LLM_"))},
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": key,
        "OPENAI_BASE_URL": openai_fake.url + "/v1",
        "LLM_MAX_RETRIES": "0",
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": log_format,
    }
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            failed = await client.post("/analyze", json={"function_code": ADD})
            openai_fake.script("/chat/completions", error_reply(400, key))
            passthrough = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": key}]},
            )
    assert failed.status_code == 502
    assert passthrough.status_code == 400
    assert openai_fake.requests[0].headers["authorization"] == f"Bearer {key}"
    log = gateway.log()
    assert "review via openai failed: openai failed: HTTP 500 (after 1 attempt)" in log
    assert key not in log
    if log_format == "json":
        events = [json.loads(line) for line in log.splitlines()]
        assert any(e["logger"] == "gateway.review" and e["request_id"] for e in events)
    else:
        # One readable line an event (nothing here logs a traceback).
        assert all(TEXT_LINE.match(line) for line in log.splitlines()), log
        assert re.search(r" WARNING gateway\.review \[request=[0-9a-f]{16}\] review via openai failed", log)


def test_an_unreachable_nats_stops_the_start_with_a_message_naming_it(tmp_path: Path) -> None:
    env = {"LLM_PROVIDER": "local", "NATS_URL": "nats://127.0.0.1:9", "NATS_START_WAIT_S": "2"}
    result = run_gateway(env, tmp_path)
    assert result.returncode != 0
    assert (
        "cannot start: review cache: NATS at nats://127.0.0.1:9 could not be reached within 2 s "
        "(NATS_START_WAIT_S)"
    ) in result.stderr
    # It kept trying meanwhile, one line per attempt, not nats-py's default traceback each time.
    assert result.stderr.count("NATS at nats://127.0.0.1:9: ") >= 2
    assert "nats: encountered error" not in result.stderr
