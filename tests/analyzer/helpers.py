"""Helpers the analyzer's test modules (and the lookup benchmarks) share: one copy of each."""

from __future__ import annotations

import sysconfig
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from analyzer.locate import SnapshotIndex
from analyzer.settings import Settings

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def settings_without_gateway(nats_url: str, **values: Any) -> Settings:
    """Analyzer settings for routes that never call the gateway: its URL is where nothing listens."""
    return Settings(nats_url=nats_url, gateway_url="http://127.0.0.1:9/v1", **values)


def src(text: str) -> bytes:
    """A source file written indented in a test, as the bytes a snapshot holds."""
    return textwrap.dedent(text).lstrip("\n").encode()


def index(files: Mapping[str, bytes | str], repo: str = "owner/project") -> SnapshotIndex:
    """An index of `files` (text or bytes), parsing in this process."""
    return SnapshotIndex({p: (d.encode() if isinstance(d, str) else d) for p, d in files.items()}, repo)


async def analyze(client: httpx.AsyncClient, job_id: str, name: str) -> httpx.Response:
    """POST /analyze/function."""
    return await client.post("/analyze/function", json={"job_id": job_id, "function_name": name})


def stdlib_files() -> dict[str, bytes]:
    """The standard library as a snapshot's files, laid out as CPython's repository has it: under Lib/."""
    return {
        "Lib/" + path.relative_to(STDLIB).as_posix(): path.read_bytes()
        for path in sorted(STDLIB.rglob("*.py"))
        if not {"site-packages", "dist-packages", "__pycache__"} & set(path.relative_to(STDLIB).parts)
    }
