"""`python -m fetcher` while its nats-server goes away: every line it writes is a line of its log format.

nats-py reports the dropped connection as `UnexpectedEOF`, an exception it never raises, and
FastStream logs it with that exception attached: the text format once wrote its "traceback"
(only `nats.errors.UnexpectedEOF: nats: unexpected EOF`) as a bare line of its own (issue #20).
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from servicekit.settings import LogFormat
from tests.support.fake_github import FakeGitHub
from tests.support.logs import TEXT_LINE
from tests.support.nats import running_nats_server
from tests.support.provision import provision_jobs
from tests.support.servers import service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def wait_for(fetcher_log: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in fetcher_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{fetcher_log.read_text(errors='replace')}"
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_nats_server_that_goes_away_is_reported_in_the_log_format(
    fmt: LogFormat, tmp_path: Path, fake_github: FakeGitHub, service_logs: Path
) -> None:
    with ExitStack() as nats_server:
        url = nats_server.enter_context(running_nats_server(tmp_path / "jetstream"))
        provision_jobs(url)  # the analyzer's part
        env = {"NATS_URL": url, "GITHUB_API_URL": fake_github.api_url, "LOG_FORMAT": fmt}
        with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT") as fetcher:
            wait_for(fetcher.log_path, "fetcher ready")
            nats_server.close()  # nats-server stops under the running fetcher
            wait_for(fetcher.log_path, "lost; reconnecting")
            time.sleep(1.5)  # past a reconnect attempt (one a second), which fails too
            # Stopped while NATS is away: what it logs on the way out is in the format too.
            assert fetcher.terminate(within=20) == 0, fetcher.log()
        log = fetcher.log()

    lines = log.splitlines()
    if fmt == "json":
        events = [json.loads(line) for line in lines]  # each line parses
    else:
        strays = [line for line in lines if not TEXT_LINE.match(line)]
        assert strays == [], log
        events = [{"level": line.split()[1], "event": line} for line in lines]
    eof = [event for event in events if "UnexpectedEOF" in json.dumps(event)]
    assert eof, log
    assert {event["level"] for event in eof} == {"WARNING"}
    assert "Traceback" not in log
