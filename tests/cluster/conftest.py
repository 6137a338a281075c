"""A real three-node NATS cluster, JetStream ready for three replicas, for one test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.nats_cluster import NatsCluster, running_nats_cluster, wait_for_jetstream


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    with running_nats_cluster(tmp_path / "cluster") as cluster:
        await wait_for_jetstream(cluster.url, replicas=3)
        yield cluster
