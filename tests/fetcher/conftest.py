"""Fixtures for the fetcher's tests: a running fetcher and the analyzer's side, on a fresh NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fetcher.settings import Settings
from tests.fetcher.helpers import Analyzer, analyzer, fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub
from tests.support.provision import provision_jobs


@pytest.fixture
def nats_url(nats_url: str) -> str:
    """A fresh nats-server with the jobs' streams and buckets, as the analyzer (their owner) makes
    them: the fetcher only checks that they exist."""
    provision_jobs(nats_url)
    return nats_url


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
