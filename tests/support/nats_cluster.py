"""A real three-node nats-server cluster on loopback (routes, JetStream on every node) for the tests."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
from nats.js.api import StreamConfig

from devstack.runner import nats_server_binary
from tests.support.nats import _wait_for_port
from tests.support.ports import free_port
from tests.support.servers import stop_process


@dataclass
class ClusterNode:
    name: str
    client_port: int
    cluster_port: int
    store_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


@dataclass
class NatsCluster:
    """Nodes that can be killed and started again on the same ports and store folders."""

    nodes: list[ClusterNode]
    cluster_name: str = "codereview-test"
    log_dir: Path | None = None

    @property
    def url(self) -> str:
        """NATS_URL for a service: every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def start(self, index: int) -> None:
        node = self.nodes[index]
        others = [other for other in self.nodes if other is not node]
        routes = ",".join(f"nats://127.0.0.1:{other.cluster_port}" for other in others)
        log_path = (self.log_dir or node.store_dir) / f"{node.name}.log"
        node.process = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-n",
                node.name,
                "-a",
                "127.0.0.1",
                "-p",
                str(node.client_port),
                "-sd",
                str(node.store_dir),
                "--cluster_name",
                self.cluster_name,
                "--cluster",
                f"nats://127.0.0.1:{node.cluster_port}",
                "--routes",
                routes,
                "-l",
                str(log_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(node.client_port, node.process)

    def kill(self, index: int) -> None:
        """SIGKILL, as a crashed machine: no goodbye to the cluster, no flush."""
        process = self.nodes[index].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.nodes[index].process = None

    def stop(self, index: int) -> None:
        process = self.nodes[index].process
        if process is not None:
            stop_process(process)
        self.nodes[index].process = None


async def wait_for_jetstream(url: str, replicas: int, timeout: float = 60.0) -> float:
    """Wait until the cluster's JetStream can place a stream of `replicas` replicas; the seconds it took.

    A meta leader alone is not enough: until every node has reported to it, an R3 create fails
    with "no suitable peers for placement". Raises TimeoutError after `timeout` seconds.
    """
    started = time.monotonic()
    deadline = started + timeout
    client = await nats.connect(url.split(","), connect_timeout=2, max_reconnect_attempts=-1)
    probe = "READINESS_PROBE"
    config = StreamConfig(name=probe, subjects=["readiness.probe"], num_replicas=replicas)
    try:
        js = client.jetstream(timeout=5)
        while True:
            try:
                await js.add_stream(config)
                await js.delete_stream(probe)
                return time.monotonic() - started
            except (TimeoutError, nats.errors.Error):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JetStream on {url} has no meta leader after {timeout:g} s") from None
                await asyncio.sleep(0.2)
    finally:
        await client.close()


@contextmanager
def running_nats_cluster(store_dir: Path, size: int = 3) -> Iterator[NatsCluster]:
    """`size` nats-servers routed into one cluster, JetStream and its own store folder on each.

    Callers wait for JetStream (`wait_for_jetstream`) before creating replicated streams.
    """
    nodes = [ClusterNode(f"n{i}", free_port(), free_port(), store_dir / f"n{i}") for i in range(1, size + 1)]
    for node in nodes:
        node.store_dir.mkdir(parents=True, exist_ok=True)
    cluster = NatsCluster(nodes, log_dir=store_dir)
    try:
        for index in range(size):
            cluster.start(index)
        yield cluster
    finally:
        for index in range(size):
            cluster.stop(index)
