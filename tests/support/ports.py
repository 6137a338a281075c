"""Free loopback ports for servers the tests start, safe with parallel workers (pytest-xdist).

A port handed out by number (for a nats-server or a service process to bind later) is free when
it is handed out, not when the server binds it. The kernel's own free port (bind to port 0) is
drawn from the ephemeral range, which every outgoing connection on the machine also draws from,
and another worker may be handed the same one meanwhile. So each test process takes its ports
from a block of its own below the ephemeral range: workers of one run get disjoint blocks, the
run's first block is drawn from the run's id (two runs on one machine rarely share a block), and
a block is walked in order, so a worker never hands out a port twice until it has used the other
999. A port something already listens on (or still holds) is skipped.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

BLOCK = 1000
LOWEST = 15000
# Linux's default ephemeral range starts here; the real one is read below when it can be.
EPHEMERAL_START = 32768


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_START


def _worker_index() -> int:
    """0 for a run without workers, N for xdist's worker gwN."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name.removeprefix("gw")) if name.startswith("gw") and name[2:].isdigit() else 0


def block_start(worker: int, run_id: str | None, blocks: int) -> int:
    """The first port of `worker`'s block: consecutive workers of one run get consecutive blocks
    (modulo `blocks`), starting at a block chosen by `run_id` (at random without one)."""
    if run_id is None:
        first = random.randrange(blocks)  # spreading runs, not a secret
    else:
        first = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") % blocks
    return LOWEST + ((first + worker) % blocks) * BLOCK


def _ports() -> Iterator[int]:
    blocks = max(1, (min(_ephemeral_start(), 65536) - LOWEST) // BLOCK)
    start = block_start(_worker_index(), os.environ.get("PYTEST_XDIST_TESTRUNUID"), blocks)
    offset = 0
    while True:
        yield start + offset
        offset = (offset + 1) % BLOCK


_next_port = _ports()
_lock = threading.Lock()  # fake servers run in threads of the test process


def _bindable(port: int) -> bool:
    # No SO_REUSEADDR: a port with a connection still in TIME_WAIT is skipped too, since a
    # server without the option could not bind it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, from this process's own block.

    RuntimeError if none of the block's ports is free."""
    with _lock:
        for _ in range(BLOCK):
            port = next(_next_port)
            if _bindable(port):
                return port
    raise RuntimeError(f"no free port left in this test process's block of {BLOCK}")


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (no race: the server adopts it)."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP; without it every response waits ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
