"""Parse source files in worker processes, each file within a budget of size, CPU time and memory.

`ast.parse` holds the GIL for the whole parse and its tree can take hundreds of times the file's
size: a 9 MB one-line list took 10-22 s and 4.3 GB. Run in the server, it would stall every other
request and could take the server down with it. So every parse happens in a worker process whose
address space is capped (`RLIMIT_AS`: the parse fails with MemoryError), with a CPU-time cap set
around each file (`RLIMIT_CPU`: the kernel ends the worker with SIGXCPU), after a size check that
refuses what no budget would allow. A file over any of them is set aside as unparsable, with the
reason and the setting to raise, like a syntax error; the rest of the repository keeps working.

A worker that dies takes the files it was given with it, and the death does not say whose it
was: the pool's workers parse other lookups' files too, and a worker may be killed from outside
(the OOM killer, an operator). So each of those files is parsed once more in a process of its
own, and only the signal of the CPU budget (SIGXCPU) there blames the file. Any other death is
tried once more; if that dies too, the parse fails for now (`WorkersUnavailable`, 503), and
nothing about the file is remembered.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from analyzer.locate import ParsedFile
from analyzer.locate.tables import Unparsable, parse_file
from analyzer.worker_processes import WORKERS

if TYPE_CHECKING:
    # Not imported at run time: the workers import this module, and need no pydantic.
    from analyzer.settings import Settings


@dataclass(frozen=True, slots=True)
class ParseBudget:
    """What parsing one file may take; the names of the settings that raise each limit."""

    max_bytes: int
    cpu_s: int
    memory_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> ParseBudget:
        """The budget the analyzer's settings give."""
        return cls(
            max_bytes=settings.analyzer_parse_max_bytes,
            cpu_s=settings.analyzer_parse_cpu_s,
            memory_bytes=settings.analyzer_parse_memory_bytes,
        )

    def too_big(self, size: int) -> Unparsable:
        return Unparsable(
            f"{size} bytes: over the parse budget of {self.max_bytes} bytes (ANALYZER_PARSE_MAX_BYTES)"
        )

    def too_costly(self) -> Unparsable:
        return Unparsable(
            f"parsing it took more than the budget of {self.cpu_s} s of CPU (ANALYZER_PARSE_CPU_S) "
            f"or {self.memory_bytes} bytes of memory (ANALYZER_PARSE_MEMORY_BYTES)"
        )

    def out_of_memory(self) -> Unparsable:
        return Unparsable(
            f"parsing it needs more than the budget of {self.memory_bytes} bytes of memory "
            "(ANALYZER_PARSE_MEMORY_BYTES)"
        )


def start_worker(memory_bytes: int, niceness: int) -> None:
    """Worker initializer: cap the address space, and step back behind the server if asked."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    if niceness:
        with contextlib.suppress(OSError):  # not allowed here: it still works, less politely
            os.nice(niceness)


@contextlib.contextmanager
def cpu_budget(cpu_s: int) -> Iterator[None]:
    """In a worker: at most `cpu_s` more seconds of CPU for this block (`RLIMIT_CPU`: the kernel
    ends the process with SIGXCPU past it), never more than an enclosing block left; the limit
    before it is put back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    limit = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_s
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            limit = min(limit, bound)
    resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def parse_within_budget(files: Mapping[str, bytes], budget: ParseBudget) -> dict[str, ParsedFile]:
    """In a worker: the tables of the Python files of `files`, each parse within `budget`.

    A file over the CPU budget ends this process (SIGXCPU); the caller sees a broken pool.
    """
    tables: dict[str, ParsedFile] = {}
    for path, data in files.items():
        if not path.endswith((".py", ".pyi")):
            continue
        if len(data) > budget.max_bytes:
            tables[path] = budget.too_big(len(data))
            continue
        with cpu_budget(budget.cpu_s):
            table = parse_file(data, path)
        if isinstance(table, Unparsable) and table.error == MemoryError.__name__:
            table = budget.out_of_memory()
        tables[path] = table
    return tables


def parse_alone(sender: Connection, data: bytes, path: str, budget: ParseBudget, niceness: int) -> None:
    """In a process of its own: send the table of one file, parsed within `budget`."""
    start_worker(budget.memory_bytes, niceness)
    sender.send(parse_within_budget({path: data}, budget)[path])
    sender.close()


# How many processes of its own a file's parse is given after a worker died with it: a death
# that is not the file's doing (killed from outside) may happen once more by chance, not thrice.
ALONE_TRIES = 2
# How long the workers of a broken pool may take to be reaped before a death is blamed on the budget.
_REAPED_WITHIN_S = 5.0


def _deaths(exit_codes: list[int | None]) -> str:
    return ", ".join(
        f"killed by {_signal_name(-code)}" if code is not None and code < 0 else f"exit code {code}"
        for code in exit_codes
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def chunks(files: Mapping[str, bytes], max_bytes: int) -> list[dict[str, bytes]]:
    """`files` cut into groups of about `max_bytes` (a larger file is a group of its own)."""
    groups: list[dict[str, bytes]] = []
    current: dict[str, bytes] = {}
    size = 0
    for path, data in files.items():
        if current and size + len(data) > max_bytes:
            groups.append(current)
            current, size = {}, 0
        current[path] = data
        size += len(data)
    if current:
        groups.append(current)
    return groups


class WorkerPool:
    """Worker processes, spawned on first use, whose address space is capped at `memory_bytes`;
    a broken pool is forgotten and the next call spawns a fresh one. Safe to share between threads."""

    def __init__(
        self,
        memory_bytes: int,
        *,
        workers: int = 1,
        initializer: Callable[..., None] = start_worker,
        initargs: tuple[object, ...] = (0,),
    ) -> None:
        self._memory_bytes = memory_bytes
        self._workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        # How many pools were spawned: a worker's state lives as long as its pool.
        self.generation = 0
        self._closed = False

    def _executor(self) -> tuple[ProcessPoolExecutor, int]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self._workers,
                    mp_context=WORKERS,
                    initializer=self._initializer,
                    initargs=(self._memory_bytes, *self._initargs),
                )
                self.generation += 1
            return self._pool, self.generation

    @staticmethod
    def died_of_cpu_budget(broken: ProcessPoolExecutor) -> bool:
        """Whether a worker of a broken pool was ended by the CPU budget (SIGXCPU); call it before
        `_discard`. True too when that cannot be told (the executor forgot its processes)."""
        # The executor keeps its processes until it is shut down; it says nothing else of a death.
        processes = getattr(broken, "_processes", None)
        if not processes:
            return True
        deadline = time.monotonic() + _REAPED_WITHIN_S
        exit_codes = []
        for process in list(processes.values()):
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            # The executor's own thread joins its dead workers too. The fork server's processes
            # (analyzer/worker_processes.py) read the status under a lock, so this join returns
            # with it; a spawned process's status is reaped by `waitpid`, and when that thread
            # reaps first, this join sees "no such child" and no exit code until it records it a
            # moment later (a kill from outside was once taken for the budget so).
            while process.exitcode is None and time.monotonic() < deadline:
                time.sleep(0.01)
            exit_codes.append(process.exitcode)
        return -signal.SIGXCPU in exit_codes or None in exit_codes

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        """Forget a broken pool (the next submit spawns a fresh one), unless that happened already."""
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (a call under way is abandoned: its caller gets BrokenProcessPool)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ParserPool(WorkerPool):
    """Worker processes (spawned on first use) that parse files within a `ParseBudget`.

    `parse` blocks its caller (a lookup's thread); `parse_files` is for the event loop. Safe to
    share between threads.
    """

    def __init__(self, budget: ParseBudget, *, workers: int = 1, niceness: int = 0) -> None:
        super().__init__(budget.memory_bytes, workers=workers, initargs=(niceness,))
        self.budget = budget
        self._niceness = niceness
        # The processes of `_parse_alone` under way: `close` ends them.
        self._alone: set[BaseProcess] = set()

    def parse(self, data: bytes, path: str) -> ParsedFile:
        """The table of one file; blocks until a worker has parsed it (or it is set aside).

        Raises analyzer.errors.WorkersUnavailable when the processes parsing it keep dying of
        something else than its budget (nothing is decided about the file then), RuntimeError once
        the pool is closed.
        """
        table = self._parse(data, path)
        if isinstance(table, list):
            # Not imported at the top: the workers import this module, and need no Litestar.
            from analyzer.errors import WorkersUnavailable

            raise WorkersUnavailable(
                f"the worker processes that parse {path} died {len(table)} times, not of its parse "
                f"budget ({_deaths(table)}): nothing is decided about the file; try again",
                path=path,
            )
        return table

    def _parse(self, data: bytes, path: str) -> ParsedFile | list[int | None]:
        """The table of one file, or the exit codes of the processes that died parsing it, not of
        its budget."""
        if len(data) > self.budget.max_bytes:
            return self.budget.too_big(len(data))
        pool, _ = self._executor()
        try:
            return pool.submit(parse_within_budget, {path: data}, self.budget).result()[path]
        except BrokenProcessPool:  # on submit too: the pool may be known broken already
            self._discard(pool)
        # A worker died: of this file's parse, of another one in the same pool, or killed from
        # outside. Only a process of its own can tell.
        exit_codes: list[int | None] = []
        for _ in range(ALONE_TRIES):
            table, exit_code = self._parse_alone(data, path)
            if table is not None:
                return table
            if exit_code == -signal.SIGXCPU:
                return self.budget.too_costly()
            exit_codes.append(exit_code)
        with self._lock:
            if self._closed:  # what ended it
                raise RuntimeError("the worker pool is closed")
        return exit_codes

    def _parse_alone(self, data: bytes, path: str) -> tuple[ParsedFile | None, int | None]:
        """(the table, None) from a process of its own, or (None, its exit code) when it died."""
        receiver, sender = WORKERS.Pipe(duplex=False)
        process = WORKERS.Process(
            target=parse_alone, args=(sender, data, path, self.budget, self._niceness), daemon=True
        )
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the worker pool is closed")
                self._alone.add(process)
                process.start()
            sender.close()  # the child's copy is the only one left: its death ends the pipe
            with contextlib.suppress(EOFError, OSError):  # it died before it sent the table
                table: ParsedFile = receiver.recv()
                return table, None
            process.join()
            return None, process.exitcode
        finally:
            receiver.close()
            sender.close()
            with self._lock:
                self._alone.discard(process)
            if process.is_alive():
                process.join()

    def close(self) -> None:
        """Stop the workers, and the processes parsing a file alone (a call under way is abandoned:
        its caller gets RuntimeError)."""
        super().close()
        with self._lock:
            alone = list(self._alone)
        for process in alone:
            process.terminate()

    async def parse_files(self, files: Mapping[str, bytes]) -> dict[str, ParsedFile]:
        """The tables of the Python files of `files`, parsed together in one worker task.

        A file whose processes keep dying of something else than its budget is left out (no
        verdict: a lookup parses it when it needs it). Raises RuntimeError once the pool is closed.
        """
        import asyncio  # here, not at the top: the worker processes import this module too

        pool, _ = self._executor()
        try:
            return await asyncio.wrap_future(pool.submit(parse_within_budget, dict(files), self.budget))
        except BrokenProcessPool:
            self._discard(pool)
        # One of them broke the worker, or something else did: each on its own, so that only a file
        # that breaks a worker by itself is blamed.
        tables: dict[str, ParsedFile] = {}
        for path, data in files.items():
            if path.endswith((".py", ".pyi")):
                table = await asyncio.to_thread(self._parse, data, path)
                if not isinstance(table, list):
                    tables[path] = table
        return tables
