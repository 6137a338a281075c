"""`python -m model_host` as a real process: it serves, or it says which file and why, and exits."""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from pathlib import Path

import httpx
import pytest

from tests.model_host.tiny_gpt2 import write_tiny_gpt2
from tests.support.clients import openai_client
from tests.support.ports import free_port
from tests.support.servers import ROOT, service_process


async def run_until_exit(env: dict[str, str]) -> tuple[int, str]:
    """Run model_host with `env` until it exits by itself (the cases here must); its code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "model_host",
        cwd=ROOT,
        env={**os.environ, "MODEL_HOST_PORT": str(free_port()), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(120):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp / "absent.gguf", "no such file"),
        (lambda tmp: tmp, "not a regular file"),
        (
            lambda tmp: (tmp / "notes.gguf").write_text("hello") and tmp / "notes.gguf",
            "not a GGUF model file",
        ),
        (lambda tmp: write_tiny_gpt2(tmp / "old.bin"), "a legacy GGML (ggml) file"),
    ],
    ids=["missing", "directory", "text", "ggml-for-llama.cpp"],
)
async def test_a_model_path_that_cannot_be_a_model_stops_it_before_serving(
    tmp_path: Path, make: object, reason: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, output = await run_until_exit({"MODEL_PATH": str(path)})
    assert code == 2
    assert f"MODEL_PATH {path}: {reason}" in output
    assert "Uvicorn running" not in output


async def test_a_gguf_that_llama_cpp_cannot_load_stops_the_server_with_llama_cpps_reason(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + struct.pack("<I", 3) + bytes(64))  # a header, then nothing sensible
    code, output = await run_until_exit({"MODEL_PATH": str(broken)})
    assert code == 1
    assert f"cannot serve: MODEL_PATH {broken}: llama.cpp could not load it: " in output
    assert "unknown model architecture" in output


@pytest.mark.model
async def test_current_gguf_files_are_beyond_ctransformers_and_it_says_so() -> None:
    code, output = await run_until_exit({"MODEL_ENGINE": "ctransformers"})
    assert code == 1
    assert "ctransformers could not load it" in output
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in output
    assert "use MODEL_ENGINE=llama_cpp" in output


async def test_invalid_settings_stop_it_with_the_setting_named() -> None:
    code, output = await run_until_exit({"MODEL_ENGINE": "pytorch"})
    assert code == 2
    assert "model_host: invalid configuration, not starting" in output
    assert "MODEL_ENGINE: Input should be 'llama_cpp' or 'ctransformers'" in output


@pytest.mark.model
@pytest.mark.slow
async def test_it_serves_the_bundled_model_under_the_configured_name(service_logs: Path) -> None:
    env = {"MODEL_NAME": "smollm2", "MODEL_CONTEXT_SIZE": "1024", "MODEL_THREADS": "1"}
    with service_process("model_host", env, service_logs, port_variable="MODEL_HOST_PORT") as service:
        async with httpx.AsyncClient(base_url=service.url) as http:
            health = (await http.get("/health")).json()
        async with openai_client(f"{service.url}/v1") as client:
            models = await client.models.list()
            answer = await client.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": "Say hi."}], max_tokens=3
            )
        # A graceful stop on SIGTERM ends with 0 (servicekit.serving), not by the signal.
        assert service.stop() == 0
    assert health == {"status": "ok", "model": "smollm2", "engine": "llama_cpp"}
    assert [model.id for model in models.data] == ["smollm2"]
    assert answer.usage is not None
    assert answer.usage.completion_tokens <= 3
    log = service.log()
    assert "model smollm2 ready (engine llama_cpp, context 1024" in log
    # The completion line names the completion id the client got, beside the request id.
    [completion] = [line for line in log.splitlines() if "completion prompt_tokens=" in line]
    assert completion.endswith(f"completion_id={answer.id}")
    assert "Say hi" not in log  # prompts are never logged
