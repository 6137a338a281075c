"""Text from outside never reaches the terminal raw: names, paths, suggestions, job errors (issue #20).

A service (or a provider behind it, or a repository's file names) may answer with ESC sequences,
CR/LF, the 8-bit CSI U+009B or a right-to-left override. The CLI runs as a process, as in the
other tests here, against services on loopback that answer such text: a small analyzer and
gateway in this test's loop (what a hostile or broken service could send; the real ones are
tested elsewhere), and a real nats-server for `watch`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from rich.console import Console

from codereview.output import markup_label
from jobs_contract import JobEvent, JobStatus
from tests.cli.conftest import Result, run_cli, watching
from tests.support.asgi import read_body, run_lifespan
from tests.support.servers import serving

# Clears the screen, forges a line (CR LF), CSI in its 8-bit form, a right-to-left override, DEL.
HOSTILE = "a\x1b[2J\r\n2026-01-01 forged\x9b31m\u202etxt.exe\x7f"
SHOWN = "a\\x1b[2J\\r\\n2026-01-01 forged\\x9b31m\\u202etxt.exe\\x7f"
RAW = ("\x1b", "\r", "\x9b", "\u202e", "\x7f")
# Text that Rich would read as markup or an emoji code: printed as it is.
MARKUP = "Use [bold]dict[str, int][/] :warning: here; café, 関数"
JOB = "0123456789abcdef0123456789abcdef"


def assert_no_raw(*texts: str) -> None:
    for text in texts:
        for char in RAW:
            assert char not in text, (char, text)


class HostileServices:
    """The analyzer's and gateway's routes the CLI calls, answering hostile text."""

    def __init__(self) -> None:
        self.status = JobStatus.READY

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        await read_body(receive)
        status, body = self.answer(scope["method"], scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    def answer(self, method: str, path: str) -> tuple[int, Any]:
        if (method, path) == ("POST", "/analyze/start"):
            return 200, {"job_id": JOB}
        if (method, path) == ("GET", f"/analyze/jobs/{JOB}"):
            record = {
                "job_id": JOB,
                "status": self.status,
                "owner": "octo",
                "repo": "demo",
                "created_at": 1.0,
            }
            record |= {"updated_at": 1.0, "commit_sha": "a" * 40, "files": 1}
            if self.status == JobStatus.FAILED:
                record["error"] = HOSTILE
            return 200, record
        if (method, path) == ("POST", "/analyze/function"):
            return 200, {"suggestions": [HOSTILE, MARKUP]}
        if (method, path) == ("POST", "/analyze"):  # the gateway's
            return 200, {"suggestions": [HOSTILE]}
        if (method, path) == ("POST", "/v1/chat/completions"):  # the gateway's review in a module
            content = json.dumps({"suggestions": [HOSTILE], "findings": []})
            return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}
        if (method, path) == ("GET", f"/analyze/jobs/{JOB}/functions"):
            listed = [
                {"name": f"mod.{HOSTILE}", "full_name": f"pkg.mod.{HOSTILE}", "path": HOSTILE, "line": 3}
            ]
            return 200, {"functions": listed, "next_cursor": None}
        return 404, {
            "status_code": 404,
            "detail": f"no function {HOSTILE}",
            "extra": {"did_you_mean": [HOSTILE]},
        }


@pytest.fixture
async def services() -> AsyncIterator[tuple[HostileServices, str]]:
    app = HostileServices()
    async with serving(app) as url:
        yield app, url


async def review(url: str, *args: str) -> Result:
    return await run_cli(
        "review", "https://github.com/octo/demo", f"mod.{HOSTILE}", "--analyzer-url", url, *args
    )


async def test_review_prints_hostile_names_and_suggestions_escaped(
    services: tuple[HostileServices, str],
) -> None:
    _, url = services
    result = await review(url, "--nats-url", "nats://127.0.0.1:9")
    assert result.code == 0, result.stderr
    assert_no_raw(result.stdout, result.stderr)
    assert result.stdout.splitlines() == [
        f"mod.{SHOWN} in octo/demo@aaaaaaaaaaaa: 2 suggestions",
        f"  1. {SHOWN}",
        f"  2. {MARKUP}",
    ]

    as_json = await review(url, "--nats-url", "nats://127.0.0.1:9", "--json")
    assert as_json.code == 0, as_json.stderr
    assert_no_raw(as_json.stdout)  # U+009B and U+202E too, which JSON allows raw
    assert "\\u009b" in as_json.stdout
    answer = json.loads(as_json.stdout)
    assert answer["suggestions"] == [HOSTILE, MARKUP]  # what the service sent, exactly
    assert answer["function_name"] == f"mod.{HOSTILE}"


async def test_a_hostile_job_error_and_service_error_are_one_escaped_line(
    services: tuple[HostileServices, str],
) -> None:
    app, url = services
    app.status = JobStatus.FAILED
    failed = await review(url, "--nats-url", "nats://127.0.0.1:9")
    assert failed.code == 4
    assert_no_raw(failed.stdout, failed.stderr)
    assert failed.stderr.splitlines() == [f"codereview: job {JOB} failed: {SHOWN}"]

    as_json = await review(url, "--nats-url", "nats://127.0.0.1:9", "--json")
    assert_no_raw(as_json.stdout, as_json.stderr)
    assert json.loads(as_json.stdout)["error"]["message"] == f"job {JOB} failed: {HOSTILE}"

    missing = await run_cli("functions", "f" * 32, "--analyzer-url", url)
    assert missing.code == 3
    assert_no_raw(missing.stderr)
    [line] = missing.stderr.splitlines()
    assert line == f"codereview: analyzer at {url}: 404: no function {SHOWN}"


async def test_functions_lists_hostile_names_and_paths_escaped(services: tuple[HostileServices, str]) -> None:
    _, url = services
    listed = await run_cli("functions", JOB, "--analyzer-url", url)
    assert listed.code == 0, listed.stderr
    assert_no_raw(listed.stdout, listed.stderr)
    assert listed.stdout.splitlines() == [f"mod.{SHOWN}  {SHOWN}:3"]
    as_json = await run_cli("functions", JOB, "--analyzer-url", url, "--json")
    assert_no_raw(as_json.stdout)
    assert json.loads(as_json.stdout)["functions"][0]["path"] == HOSTILE


async def test_code_prints_a_hostile_file_name_and_suggestion_escaped(
    services: tuple[HostileServices, str], tmp_path: Path
) -> None:
    _, url = services
    path = tmp_path / "mod\x1b[31m\u202e\n.py"
    path.write_text("def add(a, b):\n    return a + b\n")
    shown = str(tmp_path) + "/mod\\x1b[31m\\u202e\\n.py"
    result: Result = await run_cli("code", str(path), "--gateway-url", url)
    assert result.code == 0, result.stderr
    assert_no_raw(result.stdout, result.stderr)
    assert result.stdout.splitlines() == [f"add ({shown}:1): 1 suggestion", f"  1. {SHOWN}"]

    missing = await run_cli("code", f"{path}:nope", "--gateway-url", url)
    assert missing.code == 3
    assert_no_raw(missing.stderr)
    assert len(missing.stderr.splitlines()) == 1


@pytest.mark.nats
async def test_watch_prints_a_hostile_event_escaped(nats_url: str) -> None:
    event = JobEvent(job_id=JOB, event="failed", status=JobStatus.FAILED, error=HOSTILE, at=0.0)
    outputs = []
    for extra in ([], ["--json"]):
        process = await watching(nats_url, "--count", "1", *extra)
        client = await nats.connect(nats_url)
        try:
            await client.publish(f"codereview.jobs.{JOB}.failed", msgspec.json.encode(event))
            await client.flush()
        finally:
            await client.close()
        async with asyncio.timeout(30):
            stdout, _ = await process.communicate()
        assert process.returncode == 0
        outputs.append(stdout.decode())
    text, as_json = outputs
    assert_no_raw(text, as_json)
    [line] = text.splitlines()
    assert line.endswith(f"  {JOB}  failed     failed      0%  0 files  {SHOWN}")
    assert json.loads(as_json)["error"] == HOSTILE


def test_a_progress_label_is_shown_as_it_is_not_read_as_markup() -> None:
    # Progress bars are drawn only on a terminal; their descriptions are read as Rich markup.
    console = Console(width=200, force_terminal=False, record=True)
    label = f"reviewing {HOSTILE}[/] [bold]x"
    console.print(markup_label(label))
    assert console.export_text().rstrip("\n") == f"reviewing {SHOWN}[/] [bold]x"
