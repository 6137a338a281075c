"""Worker processes killed from outside, as the OOM killer or an operator may do it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path


class Killer:
    """Kills, from outside, each worker process of this test once it has worked for a while (its
    CPU time past `after_s` since the killer began watching), `times` times in all: what the OOM
    killer or an operator may do. A child that does no work meanwhile (an idle worker an earlier
    test of this process left) is never taken for one."""

    def __init__(self, times: int, after_s: float = 0.4) -> None:
        self.times = times
        self.after_s = after_s
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ticks = os.sysconf("SC_CLK_TCK")
        # The CPU time each child had already used when the watch began.
        self._before: dict[int, float] = {}

    def __enter__(self) -> Killer:
        for child in multiprocessing.active_children():
            if child.pid is not None:
                self._before[child.pid] = self._cpu_s(child.pid) or 0.0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _cpu_s(self, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.killed) < self.times:
            for child in multiprocessing.active_children():
                pid = child.pid
                if pid is None or pid in self.killed:
                    continue
                cpu = self._cpu_s(pid)
                if cpu is not None and cpu - self._before.get(pid, 0.0) >= self.after_s:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                    break
            time.sleep(0.01)
