"""A service started before NATS (or before its JetStream answers) waits for it, one log line per
attempt, for NATS_START_WAIT_S: healthy once NATS is up, a clear message if it never is."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server
from tests.support.ports import free_port
from tests.support.provision import provision_jobs
from tests.support.servers import ServiceProcess, service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]

SHUTDOWN_TIMEOUT_S = 20

# service, its port variable, what else it needs to start
SERVICES = [
    ("analyzer", "ANALYZER_PORT", {}),
    ("fetcher", "FETCHER_HEALTH_PORT", {}),
    ("gateway", "GATEWAY_PORT", {"LLM_PROVIDER": "local"}),
]


def wait_for_log(service: ServiceProcess, text: str, count: int, within: float = 60.0) -> str:
    deadline = time.monotonic() + within
    while (log := service.log()).count(text) < count:
        assert service.process.poll() is None, f"{service.package} exited:\n{log[-4000:]}"
        assert time.monotonic() < deadline, f"{count} x {text!r} not logged within {within} s:\n{log}"
        time.sleep(0.1)
    return log


@pytest.mark.parametrize(("package", "port_variable", "extra"), SERVICES)
def test_a_service_started_before_nats_is_healthy_once_nats_is_up(
    package: str,
    port_variable: str,
    extra: dict[str, str],
    tmp_path: Path,
    fake_github: FakeGitHub,
    service_logs: Path,
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    env = {
        "NATS_URL": url,
        "NATS_START_WAIT_S": "120",
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        "GITHUB_API_URL": fake_github.api_url,
        **extra,
    }
    with service_process(
        package, env, service_logs, port_variable=port_variable, health_path=None
    ) as service:
        # It keeps trying: one warning per attempt, and no traceback.
        wait_for_log(service, f"NATS at {url}: ", count=2)
        with running_nats_server(tmp_path / "jetstream", port=port):
            if package == "fetcher":
                provision_jobs(url)  # the analyzer's part; the fetcher waits for it
            service.wait_healthy(timeout=60)
        # NATS is gone again: a stop now has nothing to flush, and still ends cleanly.
        wait_for_log(service, f"NATS connection to {url} lost", count=1)
        code = service.terminate(within=SHUTDOWN_TIMEOUT_S + 10)
        log = service.log()
    assert code == 0, log
    assert "Traceback" not in log
    assert "nats: encountered error" not in log


@pytest.mark.parametrize(("package", "port_variable", "extra"), SERVICES)
def test_a_nats_without_jetstream_is_waited_for_then_named(
    package: str,
    port_variable: str,
    extra: dict[str, str],
    tmp_path: Path,
    fake_github: FakeGitHub,
    service_logs: Path,
) -> None:
    with running_nats_server(tmp_path / "plain", jetstream=False) as url:
        env = {"NATS_URL": url, "NATS_START_WAIT_S": "3", "GITHUB_API_URL": fake_github.api_url, **extra}
        with service_process(
            package, env, service_logs, port_variable=port_variable, health_path=None
        ) as service:
            code = service.process.wait(timeout=60)
            log = service.log()
    assert code != 0
    assert f"JetStream at {url} not ready (attempt 2)" in log
    assert f"JetStream at {url} was not ready within 3 s (NATS_START_WAIT_S)" in log
