"""Fixtures for the fetcher's tests: a running fetcher and the analyzer's side, on a fresh NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fetcher.settings import Settings
from tests.fetcher.helpers import Analyzer, analyzer, fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub


@pytest.fixture
def settings(nats_url: str, fake_github: FakeGitHub) -> Settings:
    return fetcher_settings(nats_url, fake_github.api_url)


@pytest.fixture
async def jobs(nats_url: str) -> AsyncIterator[Analyzer]:
    """The analyzer's side: submit jobs, read records and snapshots, see every job event."""
    async with analyzer(nats_url) as side:
        yield side


@pytest.fixture
async def fetcher(settings: Settings, jobs: Analyzer) -> AsyncIterator[Settings]:
    """A fetcher running in the test's loop with `settings`; yields them."""
    async with running_fetcher(settings):
        yield settings
