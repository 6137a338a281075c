"""A request path holding a forged log line and terminal escapes, against a real analyzer process.

The path is percent-decoded before it is logged (`GET /analyze/jobs/... -> 422`): `%0A` once
started a line of its own that read as an ERROR, `%1B[31m` coloured the terminal, and the JSON
format left U+009B and U+202E raw (issue #20).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from servicekit.settings import LogFormat
from tests.support.logs import TEXT_LINE
from tests.support.servers import service_process

pytestmark = [pytest.mark.nats, pytest.mark.slow]

FORGED = "2026-01-01T00:00:00.000000Z ERROR analyzer.app [request=-] forged"
# LF, the forged line, ESC [31m, U+009B (C2 9B in UTF-8), U+202E (E2 80 AE).
HOSTILE_PATH = (
    "/analyze/jobs/a%0A" + FORGED.replace(" ", "%20") + "%1B%5B31mred%C2%9B2J%E2%80%AEtxt/functions"
)
DECODED = "a\n" + FORGED + "\x1b[31mred\x9b2J\u202etxt"


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_hostile_request_path_is_logged_escaped(
    fmt: LogFormat, nats_url: str, service_logs: Path
) -> None:
    env = {"NATS_URL": nats_url, "GATEWAY_URL": "http://127.0.0.1:9/v1", "LOG_FORMAT": fmt}
    with service_process("analyzer", env, service_logs, port_variable="ANALYZER_PORT") as analyzer:
        async with httpx.AsyncClient(base_url=analyzer.url) as client:
            answer = await client.get(HOSTILE_PATH)
        assert analyzer.terminate(within=20) == 0
        raw = analyzer.log_path.read_bytes()

    assert answer.status_code == 422
    for char in ("\x1b", "\r", "\x9b", "\u202e"):
        assert char.encode() not in raw, repr(char)
    lines = raw.decode().splitlines()
    assert not [line for line in lines if line.startswith(FORGED[:27])]
    if fmt == "text":
        assert all(TEXT_LINE.match(line) for line in lines), raw.decode()
        [logged] = [line for line in lines if " -> 422" in line]
        assert "GET /analyze/jobs/a\\n2026-01-01T00:00:00.000000Z ERROR analyzer.app" in logged
        assert "forged\\x1b[31mred\\x9b2J\\u202etxt/functions -> 422" in logged
    else:
        events = [json.loads(line) for line in lines]
        [logged] = [event for event in events if " -> 422" in event["event"]]
        # Escaped in the line, exactly the decoded path in the value.
        assert logged["event"].startswith(f"GET /analyze/jobs/{DECODED}/functions -> 422")
