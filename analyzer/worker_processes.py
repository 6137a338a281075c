"""How the analyzer starts its worker processes (parse, search and listing workers): forked from
a fork server that has imported their modules once.

A fresh interpreter (multiprocessing's "spawn") imports the worker modules each time: about 75 ms
of CPU per worker, paid again whenever the CPU budget ends one and the next file needs a new one.
A fork from the fork server starts one in a few milliseconds. The server is a process of its own,
started fresh on first use: not a fork of the analyzer, whose threads (NATS, lookups) and snapshot
cache a worker must not inherit.

multiprocessing's fork-server processes read their exit status from a pipe, once: when two
threads poll one dead process at the same moment (a pool's own thread and the caller that asks how
it died), the one that reads second meets the end of the pipe and records exit code 255 over the
real status, so a worker ended by the CPU budget looked killed from outside. The processes here
read it under a lock, and the second reader gets the status the first one read.
"""

from __future__ import annotations

import os
import threading
from multiprocessing import forkserver, popen_forkserver
from multiprocessing.connection import wait
from multiprocessing.context import ForkServerContext, ForkServerProcess
from multiprocessing.process import BaseProcess

# What the fork server imports before it forks anything: every module a worker runs.
PRELOAD = ["analyzer.parsing", "analyzer.listing_worker", "analyzer.searching"]


class _Popen(popen_forkserver.Popen):
    _reading = threading.Lock()

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            if not wait([self.sentinel], 0 if flag == os.WNOHANG else None):
                return None
            with self._reading:
                if self.returncode is None:
                    try:
                        self.returncode = forkserver.read_signed(self.sentinel)
                    except (OSError, EOFError):
                        # The fork server itself was killed: multiprocessing's own answer.
                        self.returncode = 255
        return self.returncode


class _Process(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: BaseProcess) -> _Popen:  # noqa: N802 (multiprocessing's name)
        return _Popen(process_obj)


class _Context(ForkServerContext):
    Process = _Process


WORKERS = _Context()
WORKERS.set_forkserver_preload(PRELOAD)
