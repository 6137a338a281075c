"""`codereview watch` prints the job events the fetcher publishes, live, one line (or object) each."""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest

from tests.cli.conftest import Stack, watching

# One stack for the module's tests (tests/cli/conftest.py `stack`): in its loop, on one worker.
pytestmark = [
    pytest.mark.nats,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("cli-watch"),
]


async def test_watch_prints_a_jobs_events_until_the_count(stack: Stack) -> None:
    stack.github.add_repo("octo", "demo", {"app.py": "def main():\n    return 0\n"})
    text = await watching(stack.nats_url, "--count", "2")
    as_json = await watching(stack.nats_url, "--count", "2", "--json")
    client = await nats.connect(stack.nats_url)
    try:
        # Something on the subjects that is not a job event is shown as such, not a crash.
        await client.publish("codereview.jobs.intruder.progress", b"\xff not json")
        await client.flush()
        async with httpx.AsyncClient(base_url=stack.analyzer_url) as http:
            started = await http.post("/analyze/start", json={"repo_url": "https://github.com/octo/demo"})
        job_id = started.json()["job_id"]
        async with asyncio.timeout(60):
            text_out, text_err = await text.communicate()
            json_out, _ = await as_json.communicate()
    finally:
        await client.close()
        for process in (text, as_json):
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert (text.returncode, as_json.returncode) == (0, 0), text_err
    intruder, event = text_out.decode().splitlines()
    assert intruder.endswith("  codereview.jobs.intruder.progress: not a job event")
    assert f"  {job_id}  " in event
    first, second = (json.loads(line) for line in json_out.decode().splitlines())
    assert first == {"subject": "codereview.jobs.intruder.progress", "not_a_job_event": True}
    assert second["job_id"] == job_id
    assert second["subject"] == f"codereview.jobs.{job_id}.{second['event']}"
    assert second["status"] in ("fetching", "ready")
