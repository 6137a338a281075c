"""The AsyncAPI document FastStream generates: what it promises, and that the committed copy is current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fetcher.app import asyncapi_document, create_app
from fetcher.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "fetcher-asyncapi.json"


def test_the_document_names_the_work_queue_and_the_event_subjects_with_their_payloads() -> None:
    document = asyncapi_document(create_app(Settings.model_construct(), configure_logging=False))

    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {
        "codereview.fetch.requests",
        "codereview.pulls.describe",
        "_INBOX.{inbox}",
        "codereview.jobs.{job_id}.progress",
        "codereview.jobs.{job_id}.completed",
        "codereview.jobs.{job_id}.failed",
    }
    schemas = document["components"]["schemas"]
    request = next(s for name, s in schemas.items() if name.startswith("fetch requests"))
    assert set(request["properties"]) == {"job_id", "owner", "repo", "ref", "requested_at", "request_id"}
    assert set(request["required"]) == {"job_id", "owner", "repo", "requested_at"}
    pull = next(s for name, s in schemas.items() if name.startswith("pull requests"))
    assert set(pull["properties"]) == set(pull["required"]) == {"owner", "repo", "number"}
    reply = next(s for name, s in schemas.items() if name.startswith("pull request descriptions"))
    assert set(reply["properties"]) == {"head_sha", "files", "skipped", "truncated", "error"}
    assert reply["properties"]["files"]["items"]["required"] == ["path", "lines"]
    event = next(s for name, s in schemas.items() if name.startswith("job completed"))
    assert event["properties"]["status"]["enum"] == ["failed", "fetching", "queued", "ready"]


def test_the_committed_document_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "fetcher", "asyncapi"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(generated) == json.loads(COMMITTED.read_text()), (
        "docs/fetcher-asyncapi.json is stale: run `python -m fetcher asyncapi docs/fetcher-asyncapi.json`"
    )
