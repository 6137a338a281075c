"""The one-command local stack: it refuses taken ports, comes up healthy, dies loudly, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.runner import Stack, StackError, StackSettings, uses_local_model
from tests.support.fake_github import FakeGitHub
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_taken_port_is_named_with_its_variable(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = Stack(StackSettings(analyzer_port=port, stack_dir=tmp_path))
        with pytest.raises(StackError) as caught:
            stack.check_ports()
    message = str(caught.value)
    assert f"port {port} is taken (analyzer)" in message
    assert "ANALYZER_PORT" in message


def test_a_list_of_nats_servers_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    cluster = "nats://127.0.0.1:4222,nats://127.0.0.1:4223"
    with pytest.raises(StackError) as caught:
        Stack(StackSettings(nats_url=cluster, stack_dir=tmp_path))
    message = str(caught.value)
    assert f"NATS_URL={cluster} lists several servers" in message
    assert "starts one nats-server" in message
    # The stack's own command says so in one line, without a traceback.
    result = subprocess.run(
        [sys.executable, "-m", "devstack"],
        env={**os.environ, "NATS_URL": cluster, "STACK_DIR": str(tmp_path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"[stack] NATS_URL={cluster} lists several servers" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("provider", "fallback", "expected"),
    [
        ("local", "", True),
        ("openai", "", False),
        ("openai", "deepseek, local", True),
        ("deepseek", "x", False),
    ],
)
def test_model_host_runs_only_when_a_provider_needs_it(provider: str, fallback: str, expected: bool) -> None:
    assert uses_local_model(StackSettings(llm_provider=provider, llm_fallback=fallback)) is expected


class StackProcess:
    """`python -m devstack` on free ports, its output collected line by line."""

    def __init__(self, tmp_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.ports = {
            name: free_port()
            for name in ("ANALYZER_PORT", "GATEWAY_PORT", "MODEL_HOST_PORT", "FETCHER_HEALTH_PORT")
        }
        self.nats_port = free_port()
        self.logs = tmp_path / "stack" / "logs"
        env = {
            **os.environ,
            **{k: str(v) for k, v in self.ports.items()},
            "NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "STACK_DIR": str(tmp_path / "stack"),
            "LLM_PROVIDER": "local",
            "NO_COLOR": "1",
            **(extra_env or {}),
        }
        env.pop("LOCAL_LLM_BASE_URL", None)
        env.pop("GATEWAY_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                self._reader.join(5)
                if any(text in line for line in self.lines):
                    return
                raise AssertionError(
                    f"stack exited ({self.process.returncode}) before {text!r}:\n{self.output()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output()[-5000:]}")

    def finish(self, timeout: float = 60.0) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(5)
        return code

    def child_pid(self, module: str) -> int:
        """The pid of the stack's child running `python -m module` (Linux /proc)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"-m" in cmdline and module.encode() in cmdline:
                return int(pid)
        raise AssertionError(f"no child runs {module}")


CALC: dict[str, bytes | str] = {
    "README.md": "# calc\n",
    "src/calc/__init__.py": "",
    "src/calc/ops.py": "import functools\n\n\n@functools.cache\ndef add(a, b):\n    return a + b\n",
}


# What every JSON log line holds (servicekit.logs); job_id only where one is bound.
JSON_KEYS = ["timestamp", "level", "logger", "service", "request_id", "event"]


@pytest.fixture
def stack(tmp_path: Path, fake_github: FakeGitHub) -> Iterator[StackProcess]:
    fake_github.add_repo("octo", "calc", CALC)
    # JSON logs, so that every service's lines can be read back; a model id without a size, so
    # that the gateway asks model_host (it skips a model whose id says 135M) and the review's
    # request id reaches all three.
    extra = {"GITHUB_API_URL": fake_github.api_url, "LOG_FORMAT": "json", "MODEL_NAME": "smollm2"}
    process = StackProcess(tmp_path, extra)
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait()
    process._reader.join(5)


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def post(url: str, body: dict[str, str], timeout: float = 10, request_id: str = "") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"X-Request-ID": request_id} if request_id else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.load(response)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.nats
def test_stack_comes_up_healthy_and_stops_on_ctrl_c(stack: StackProcess) -> None:
    stack.wait_for("all services healthy")
    # Nothing failed, so the first screen shows no traceback (issue #11, item 12).
    assert "Traceback" not in stack.output()
    for variable in ("ANALYZER_PORT", "GATEWAY_PORT", "MODEL_HOST_PORT", "FETCHER_HEALTH_PORT"):
        status, _ = get(f"http://127.0.0.1:{stack.ports[variable]}/health")
        assert status == 200, variable
    analyzer = f"http://127.0.0.1:{stack.ports['ANALYZER_PORT']}"
    # The graders' flow through every real part: fake GitHub -> fetcher -> NATS -> analyzer ->
    # gateway -> model_host (the bundled model), with the stack's own wiring.
    status, body = post(
        f"{analyzer}/analyze/start", {"repo_url": "https://github.com/octo/calc"}, request_id="stack-start-1"
    )
    assert status == 200
    assert list(body) == ["job_id"]
    status, review = post(
        f"{analyzer}/analyze/function",
        {"job_id": body["job_id"], "function_name": "calc.ops.add"},
        timeout=300,
        request_id="stack-review-1",
    )
    assert status == 200
    assert list(review) == ["suggestions"]
    text = " ".join(review["suggestions"]).lower()
    assert "type hint" in text
    assert "docstring" in text
    # One line per service with its URL.
    for name in ("nats", "model_host", "gateway", "fetcher", "analyzer"):
        assert any(line.startswith(f"[stack]   {name}") for line in stack.lines), name
    assert "Traceback" not in stack.output()
    stack.process.send_signal(signal.SIGINT)
    assert stack.finish() == 0
    assert "[stack] stack stopped" in stack.lines
    for name in ("analyzer", "fetcher", "gateway", "model_host", "nats"):
        assert f"[stack] stopped {name}" in stack.lines
    # Every service wrote only JSON lines with the fixed keys, and one review can be followed.
    events = {name: service_events(stack, name) for name in ("analyzer", "fetcher", "gateway", "model_host")}
    for name in ("analyzer", "gateway", "model_host"):
        assert any(e["request_id"] == "stack-review-1" for e in events[name]), name
    assert any(
        e["request_id"] == "stack-review-1" and e["event"].startswith("completion prompt_tokens=")
        for e in events["model_host"]
    )
    # The fetcher names the job and the request that started it.
    assert any(
        e.get("job_id") == body["job_id"] and e["request_id"] == "stack-start-1" and "job ready" in e["event"]
        for e in events["fetcher"]
    )


def service_events(stack: StackProcess, name: str) -> list[dict[str, Any]]:
    """The lines of one service's log in the stack's folder, each checked to be one JSON event."""
    events = []
    for line in (stack.logs / f"{name}.log").read_text().splitlines():
        event = json.loads(line)
        assert list(event)[:5] == JSON_KEYS[:5], line
        assert set(JSON_KEYS) <= set(event), line
        assert event["service"] == name
        events.append(event)
    assert events, name
    return events


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.nats
def test_a_service_that_dies_stops_the_stack_loudly(stack: StackProcess) -> None:
    stack.wait_for("all services healthy")
    os.kill(stack.child_pid("fetcher"), signal.SIGKILL)
    assert stack.finish() == 1
    output = stack.output()
    assert "!!! fetcher exited with code -9" in output
    assert "stopping the rest of the stack" in output
    assert "[stack] stopped analyzer" in stack.lines


@pytest.mark.slow
@pytest.mark.nats
def test_a_service_that_cannot_start_leaves_nothing_running(tmp_path: Path) -> None:
    stack = StackProcess(tmp_path, {"MODEL_PATH": str(tmp_path / "missing.gguf")})
    try:
        code = stack.finish(timeout=120)
    finally:
        stack._reader.join(5)
    assert code == 1
    output = stack.output()
    assert "!!! model_host exited with code" in output
    assert "missing.gguf" in output
    assert "[stack] stopped nats" in stack.lines
    # nats-server was stopped with the stack: its port is free again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", stack.nats_port))
