"""Provision the jobs' streams and buckets as the analyzer does at its start, for tests that start
a fetcher (which only checks they exist) without an analyzer."""

from __future__ import annotations

import asyncio

import nats

from jobs_contract import ensure_jetstream
from jobs_contract.settings import StorageSettings


async def provision_jobs_async(nats_url: str, storage: StorageSettings | None = None) -> None:
    """Create the fetch queue, the `jobs` KV and the `repos` Object Store on `nats_url`."""
    client = await nats.connect(nats_url.split(","))
    try:
        await ensure_jetstream(client.jetstream(), storage or StorageSettings(_env_file=None))
    finally:
        await client.close()


def provision_jobs(nats_url: str, storage: StorageSettings | None = None) -> None:
    """`provision_jobs_async` from synchronous code (a fixture, a test that runs processes)."""
    asyncio.run(provision_jobs_async(nats_url, storage))
