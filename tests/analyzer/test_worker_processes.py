"""analyzer.worker_processes: workers forked from the fork server, their modules imported, tell
every thread that asks how they died."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.process import BaseProcess

from analyzer.worker_processes import PRELOAD, WORKERS


def test_two_threads_that_ask_how_a_worker_died_both_hear_its_signal() -> None:
    # A pool's own thread and the caller that asks whether the CPU budget ended a worker poll the
    # same dead process. multiprocessing's fork-server processes read the status from a pipe once:
    # the second reader met its end and recorded 255, and a budget death looked like a kill.
    for _ in range(20):
        worker = WORKERS.Process(target=time.sleep, args=(60,), daemon=True)
        worker.start()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGXCPU)
        assert _asked_at_once(worker, askers=2) == [-signal.SIGXCPU, -signal.SIGXCPU]


def _asked_at_once(worker: BaseProcess, askers: int) -> list[int | None]:
    """The exit code each of `askers` threads reads, all joining `worker` at the same moment."""
    together = threading.Barrier(askers)
    heard: list[int | None] = []

    def ask() -> None:
        together.wait()
        worker.join(10)
        heard.append(worker.exitcode)

    threads = [threading.Thread(target=ask) for _ in range(askers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return heard


def test_a_worker_starts_with_the_worker_modules_imported() -> None:
    worker = WORKERS.Process(target=_exit_1_unless_imported, daemon=True)
    worker.start()
    worker.join(30)
    assert worker.exitcode == 0


def _exit_1_unless_imported() -> None:
    sys.exit(0 if all(name in sys.modules for name in PRELOAD) else 1)
