"""Starting prints no traceback unless something failed (issue #11, item 12)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devstack.runner import nats_ready
from tests.support.nats import running_nats_server
from tests.support.ports import free_port


@pytest.mark.nats
async def test_the_nats_probe_says_not_yet_quietly_while_nats_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    check = nats_ready(f"nats://127.0.0.1:{port}")

    assert await check() is False  # nothing listens yet: refused

    printed = capfd.readouterr()
    assert "Traceback" not in printed.out + printed.err
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
    with running_nats_server(tmp_path / "nats") as url:
        assert await nats_ready(url)() is True
