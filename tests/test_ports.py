"""free_port(): per-worker blocks below the ephemeral range, never a port in use, no early repeat."""

from __future__ import annotations

import socket

import pytest

from tests.support import ports
from tests.support.ports import BLOCK, LOWEST, block_start, free_port


def test_workers_of_one_run_get_disjoint_blocks_below_the_ephemeral_range() -> None:
    blocks = (32768 - LOWEST) // BLOCK
    starts = [block_start(worker, "run-1", blocks) for worker in range(blocks)]
    assert len(set(starts)) == blocks  # every worker its own block, up to as many as there are
    assert all(start >= LOWEST and start + BLOCK <= 32768 for start in starts)
    assert all(start % BLOCK == LOWEST % BLOCK for start in starts)
    # Another run starts elsewhere (the run id picks the first block), the same run at the same place.
    assert block_start(0, "run-1", blocks) == starts[0]
    assert {block_start(0, f"run-{n}", blocks) for n in range(50)} != {starts[0]}


def test_ports_are_handed_out_once_and_never_one_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    start = block_start(0, "test-ports", (32768 - LOWEST) // BLOCK)
    monkeypatch.setattr(ports, "_next_port", iter(range(start, start + BLOCK)))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", start + 1))
        busy.listen()
        handed = [free_port() for _ in range(3)]
    assert start + 1 not in handed
    assert len(set(handed)) == 3
    assert all(start <= port < start + BLOCK for port in handed)
    for port in handed:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))  # free indeed


def test_a_block_without_a_free_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_next_port", iter([taken] * BLOCK))
        with pytest.raises(RuntimeError, match="no free port left in this test process's block of 1000"):
            free_port()


def test_this_process_takes_its_ports_from_its_own_block() -> None:
    first = free_port()
    assert LOWEST <= first < ports._ephemeral_start()
    assert free_port() != first
