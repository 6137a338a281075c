"""How long and how much the `jobs` KV bucket, the `repos` Object Store and the fetch queue keep,
on how many NATS nodes.

The analyzer creates the buckets and applies these at each start (jobs_contract.jetstream); the
fetcher reads them to word its errors and warns when they differ from what it finds: set the same
values for both.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
DAY_S = 24 * 3600.0


class StorageSettings(BaseSettings):
    """Field names are the environment variables in lower case (`jobs_max_age_s` reads JOBS_MAX_AGE_S)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # A job record older than this is dropped: the analyzer then answers 404 for its id.
    jobs_max_age_s: float = Field(default=7 * DAY_S, gt=0)
    # Records are about 500 bytes: the default holds about half a million. When full, new jobs
    # are refused (JetStream discards new writes, never someone's record) until old ones age out.
    jobs_max_bytes: int = Field(default=256 * MIB, gt=0)
    # A snapshot (the Python files of one commit) older than this is dropped; a job still
    # pointing at it is answered 410 by the analyzer (start a new job).
    repos_max_age_s: float = Field(default=7 * DAY_S, gt=0)
    # When full, storing a new snapshot fails its job with a reason naming REPOS_MAX_BYTES.
    repos_max_bytes: int = Field(default=4096 * MIB, gt=0)

    # Fetch requests in the work queue (waiting, or being fetched: a request leaves when its job
    # ends). When it is full the queue refuses new ones, never drops a queued one (discard
    # "new"), and /analyze/start answers 503 with Retry-After. A request is under 2 KiB (the
    # contract bounds each field), so the default holds at most about 20 MiB.
    fetch_queue_max_msgs: int = Field(default=10_000, ge=1)

    # Copies of the fetch stream, the `jobs` KV and the `repos` Object Store on a NATS cluster:
    # 3 survives the loss of one node. At most the number of nodes; 1 on a single server.
    nats_replicas: int = Field(default=1, ge=1, le=5)
