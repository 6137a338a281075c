"""Fixtures every suite uses: a real nats-server, the fake GitHub, loopback servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh nats-server with JetStream and its own store folder, for one test."""
    with running_nats_server(tmp_path / "jetstream") as url:
        yield url


@pytest.fixture(scope="session")
def shared_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One nats-server for the whole session: use unique subjects, buckets and job ids."""
    with running_nats_server(tmp_path_factory.mktemp("jetstream-shared")) as url:
        yield url


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """The fake GitHub on a free loopback port; `fake_github.api_url` is GITHUB_API_URL."""
    with FakeGitHub.running() as github:
        yield github


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where service processes started by tests write their output."""
    return tmp_path_factory.mktemp("service-logs")
