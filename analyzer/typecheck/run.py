"""Run ty over a snapshot's Python files: in a fresh directory, in its own process, within a budget.

Isolation. Only the `.py` files are written, into `<tmp>/src`, so no `pyproject.toml`, `ty.toml`,
`.gitignore` or `.pth` of the repository reaches ty. ty is pointed at everything it would
otherwise discover (ty 1.0, `ty check --help` and docs.astral.sh/ty/reference/environment):
- `--config-file <tmp>/ty.toml` (an empty file): with it ty discovers no configuration file,
  neither in `src` nor in any directory above it (it walks up from the project directory
  otherwise); the user-level one is looked up under HOME/XDG_CONFIG_HOME, both in `<tmp>`;
- `--python <tmp>/env`: an empty environment (a `sys.prefix` with an empty site-packages). Without
  it ty takes VIRTUAL_ENV, CONDA_PREFIX, a `.venv` in the project, or the first `python` on PATH
  (the analyzer's own venv) and would resolve third-party imports there;
- `--python-version`, `--python-platform`: not inferred from a `requires-python` or an interpreter;
- `--no-respect-ignore-files`: no `.gitignore`/`.ignore` above `<tmp>` decides what is checked;
- a fresh environment (PATH, HOME, TMPDIR, LANG and the limits below, nothing of the analyzer's:
  no secrets, no VIRTUAL_ENV/CONDA_PREFIX/PYTHONPATH/PYTHONHOME, no TY_* of its own).
ty never imports or runs the code it reads (typeshed's stubs and the sources only); stdlib
modules come from the typeshed vendored in its binary.

Budget. One deadline for the whole check (ANALYZER_TYPECHECK_TIMEOUT_S): past it the process
group is killed. Memory: `RLIMIT_AS` (ANALYZER_TYPECHECK_MEMORY_BYTES), set by a small Python
launcher that then execs ty (not `preexec_fn`, which is unsafe with the analyzer's threads);
`MALLOC_ARENA_MAX=1` keeps glibc from reserving 64 MB of address space per thread. ty's memory
grows with the code it checks (CPython's Lib/, 31 MB, takes 1.1 GB at once), so the files are
checked in chunks of sources sized to the budget, one process after another; all files are
there in every run, so imports across chunks resolve the same. A chunk that runs out of memory
is split in two and run again; a single file that does (a 9 MB generated one-line list takes
470 MB) is set aside, removed for the runs after it (its importers then see an unresolved module,
which gives no finding), and reported in `skipped`; more than MAX_SKIPPED such files, or all of
them, fail the check: then the budget, not a file, is the matter. Threads:
TY_MAX_PARALLELISM (and RAYON_NUM_THREADS). Output: at most `output_bytes` per run, or the run
is killed: a flood is a failure. The launcher lowers ty's priority (nice 10), so that requests
keep the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import msgspec

from analyzer.typecheck import rules
from review_contract import TypeFinding

if TYPE_CHECKING:
    from analyzer.settings import Settings

# The newest Python that ty 1.0 knows as stable (it also knows 3.15, a pre-release).
PYTHON_VERSION = "3.14"
PYTHON_PLATFORM = "linux"
# How much of ty's stderr a failure quotes.
STDERR_TAIL_BYTES = 2_000
# Address space ty takes before any file: its 23 MB binary, jemalloc's arenas, thread stacks.
BASE_MEMORY_BYTES = 150_000_000
# Source bytes one run may check per byte of memory over the base: ty peaked at 387 MB RSS for
# 8 MB of CPython's Lib/ (about 48 bytes a byte of source); 60 leaves room for heavy imports.
MEMORY_PER_SOURCE_BYTE = 60
MIN_CHUNK_BYTES = 256 * 1024
# Bytes of paths on one command line (Linux allows 2 MB of arguments and environment together).
MAX_ARGV_BYTES = 256 * 1024
# Findings kept for one snapshot: more is a flood, not a review.
MAX_FINDINGS = 50_000
# Files set aside for memory before the budget itself is blamed.
MAX_SKIPPED = 8
# Bytes of ty's output per run.
OUTPUT_BYTES = 32_000_000
NICENESS = 10

# Sets the limits, then becomes ty: argv is [memory_bytes, niceness, ty, args...].
_LAUNCHER = """\
import os, resource, sys
memory = int(sys.argv[1])
_, hard = resource.getrlimit(resource.RLIMIT_AS)
if hard != resource.RLIM_INFINITY:
    memory = min(memory, hard)
resource.setrlimit(resource.RLIMIT_AS, (memory, hard))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
try:
    os.nice(int(sys.argv[2]))
except OSError:
    pass
os.execv(sys.argv[3], sys.argv[3:])
"""
# What ty (Rust) prints when an allocation fails, or a thread cannot be started, under RLIMIT_AS.
_OUT_OF_MEMORY = (
    b"memory allocation of",
    b"Cannot allocate memory",
    b"failed to spawn thread",
    b"out of memory",
    # Seen under an 80 MB budget: the Ctrl-C handler's thread could not start.
    b"Unexpected system error",
)
# A Rust panic: under RLIMIT_AS most often an allocation or a thread that could not be had (the
# panic's own line is gone from the tail by then); reported as "out of memory (or crashed)".
_PANIC = 101
_MEMORY_SIGNALS = (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS)


class TypeCheckFailed(Exception):  # noqa: N818 - the name says what the caller meets
    """The type check gave no result; `reason` says why, naming the setting to raise if one applies."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TypeCheckBudget:
    """What one type check of a snapshot may take: seconds in all, bytes of address space per ty
    process, ty's worker threads, and bytes of ty's output per process."""

    timeout_s: float
    memory_bytes: int
    threads: int = 1
    output_bytes: int = OUTPUT_BYTES

    @classmethod
    def of(cls, settings: Settings) -> TypeCheckBudget:
        """The budget the analyzer's settings give."""
        return cls(
            timeout_s=settings.analyzer_typecheck_timeout_s,
            memory_bytes=settings.analyzer_typecheck_memory_bytes,
            threads=settings.analyzer_typecheck_threads,
        )

    @property
    def chunk_bytes(self) -> int:
        """Bytes of source one ty process checks at most (a single larger file is checked alone)."""
        return max(MIN_CHUNK_BYTES, (self.memory_bytes - BASE_MEMORY_BYTES) // MEMORY_PER_SOURCE_BYTE)

    def timed_out(self) -> TypeCheckFailed:
        return TypeCheckFailed(
            f"ty did not finish within {self.timeout_s:g} s (ANALYZER_TYPECHECK_TIMEOUT_S)"
        )

    def too_costly(self) -> str:
        """Why a file was set aside."""
        return f"ty ran out of memory (or crashed) on it alone, within {self._memory}"

    def out_of_memory(self, paths: Sequence[str]) -> TypeCheckFailed:
        more = ", ..." if len(paths) > 3 else ""
        return TypeCheckFailed(
            f"ty ran out of memory (or crashed) on {len(paths)} files alone "
            f"({', '.join(paths[:3])}{more}), within {self._memory}"
        )

    @property
    def _memory(self) -> str:
        return f"{self.memory_bytes} bytes (ANALYZER_TYPECHECK_MEMORY_BYTES)"


def ty_binary() -> str:
    """The path of the `ty` binary installed with the `ty` package.

    Raises TypeCheckFailed when it is not installed.
    """
    try:
        from ty import find_ty_bin

        return find_ty_bin()
    except (ImportError, FileNotFoundError) as error:
        raise TypeCheckFailed(f"the ty binary is not installed: {error}".strip()) from None


def safe_path(path: str) -> PurePosixPath:
    """`path` as a relative path inside the snapshot; raises TypeCheckFailed for any other."""
    pure = PurePosixPath(path)
    if (
        not path
        or "\0" in path
        or "\\" in path
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise TypeCheckFailed(f"refused a path outside the snapshot: {path!r}")
    return pure


def python_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The `.py` files of a snapshot, their paths checked (TypeCheckFailed for an unsafe one)."""
    chosen = {path: data for path, data in files.items() if path.endswith(".py")}
    for path in chosen:
        safe_path(path)
    return chosen


def chunks(files: Mapping[str, bytes], chunk_bytes: int) -> list[list[str]]:
    """Paths in sorted order (a package's modules together), cut into runs of at most
    `chunk_bytes` of source and MAX_ARGV_BYTES of paths; a larger file is a run of its own."""
    runs: list[list[str]] = []
    current: list[str] = []
    size = argv = 0
    for path in sorted(files):
        length = len(files[path])
        if current and (size + length > chunk_bytes or argv + len(path) + 1 > MAX_ARGV_BYTES):
            runs.append(current)
            current, size, argv = [], 0, 0
        current.append(path)
        size += length
        argv += len(path) + 1
    if current:
        runs.append(current)
    return runs


def _write_tree(root: Path, files: Mapping[str, bytes], stop: threading.Event) -> None:
    """The layout ty runs in: `src/` with the files, an empty environment, config and home."""
    (root / "ty.toml").write_bytes(b"")
    (root / "env" / "lib" / f"python{PYTHON_VERSION}" / "site-packages").mkdir(parents=True)
    (root / "home").mkdir()
    src = root / "src"
    src.mkdir()
    for path, data in files.items():
        if stop.is_set():
            return
        target = src / path
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL|O_NOFOLLOW: never through a link, never over a file written before.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)


def _environment(root: Path, threads: int) -> dict[str, str]:
    home = str(root / "home")
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "XDG_CONFIG_HOME": str(root / "home" / ".config"),
        "TMPDIR": str(root),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "TY_MAX_PARALLELISM": str(threads),
        "RAYON_NUM_THREADS": str(threads),
        "MALLOC_ARENA_MAX": "1",
    }


def _arguments(root: Path) -> list[str]:
    arguments = [
        "check",
        "--output-format=gitlab",
        "--config-file",
        str(root / "ty.toml"),
        "--python",
        str(root / "env"),
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        PYTHON_PLATFORM,
        "--no-respect-ignore-files",
        "--no-progress",
        "--color=never",
        "--exit-zero",
        "--ignore=all",
    ]
    arguments += [f"--error={rule}" for rule in rules.RULES]
    return arguments


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL to the process's whole group (its session: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _read_capped(process: asyncio.subprocess.Process, limit: int) -> bytes | None:
    """Everything the process writes to stdout, or None once it wrote more than `limit` bytes
    (it is then killed, so that its stderr ends too)."""
    assert process.stdout is not None
    parts: list[bytes] = []
    size = 0
    while chunk := await process.stdout.read(1 << 16):
        size += len(chunk)
        if size > limit:
            _kill(process)
            return None
        parts.append(chunk)
    return b"".join(parts)


async def _read_tail(stream: asyncio.StreamReader) -> bytes:
    """The last STDERR_TAIL_BYTES of what `stream` says (all of it is read)."""
    tail = b""
    while chunk := await stream.read(1 << 16):
        tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
    return tail


# How long the pipes of a killed ty may take to reach their end (they do at once: a guard).
_DRAIN_S = 5.0


class _OutOfMemory(Exception):  # noqa: N818 - a signal between two functions here
    """ty ran out of memory: the caller may try fewer files."""


async def _start_ty(
    ty: str, root: Path, paths: Sequence[str], budget: TypeCheckBudget
) -> asyncio.subprocess.Process:
    """ty over `paths` behind the launcher that sets its limits, in a session of its own."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        _LAUNCHER,
        str(budget.memory_bytes),
        str(NICENESS),
        ty,
        *_arguments(root),
        "--",
        *paths,
        cwd=root / "src",
        env=_environment(root, budget.threads),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def _run_ty(
    ty: str, root: Path, paths: Sequence[str], budget: TypeCheckBudget, deadline: float
) -> bytes:
    """One ty process over `paths` (all files are in `root/src`); its report (JSON, not decoded here:
    a large one would hold the event loop).

    Raises _OutOfMemory when ty ran out of memory, TypeCheckFailed for any other failure.
    """
    try:
        process = await _start_ty(ty, root, paths, budget)
    except OSError as error:
        raise TypeCheckFailed(f"could not start ty: {error}") from None
    assert process.stderr is not None
    try:
        reading = asyncio.gather(_read_capped(process, budget.output_bytes), _read_tail(process.stderr))
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                stdout, stderr = await reading
                if stdout is None:
                    raise TypeCheckFailed(f"ty said more than {budget.output_bytes} bytes")
                returncode = await process.wait()
        except TimeoutError:
            raise budget.timed_out() from None
    finally:
        if process.returncode is None:
            _kill(process)
        # Both pipes read to their end and the process reaped, on every path: a pipe whose reader
        # was cancelled (a timeout) or stopped (too much output) stays open until its end is read,
        # and leaked its descriptors. ty's whole group is dead by now, so this is what the pipes
        # still hold: 64 KiB each at most.
        with contextlib.suppress(ProcessLookupError, TimeoutError):
            async with asyncio.timeout(_DRAIN_S):
                await process.communicate()
    if returncode != 0:
        # Under RLIMIT_AS ty aborts when an allocation fails, or dies of SIGSEGV when it cannot
        # even map its allocator's or a thread's memory (below ~60 MB): both are taken for memory.
        crashed = returncode == _PANIC or -returncode in _MEMORY_SIGNALS
        if crashed or any(marker in stderr for marker in _OUT_OF_MEMORY):
            raise _OutOfMemory
        said = stderr.decode("utf-8", "replace").strip().splitlines()
        raise TypeCheckFailed(
            f"ty exited with status {returncode}: {rules.one_line(said[-1]) if said else 'no message'}"
        )
    return stdout


def _judged(judge: rules.Judge, report: bytes) -> dict[str, list[TypeFinding]]:
    """In a thread: the findings `judge` keeps of ty's report; TypeCheckFailed if it is not one."""
    try:
        diagnostics = rules.DIAGNOSTICS.decode(report)
    except msgspec.DecodeError as error:
        raise TypeCheckFailed(f"ty's output is not its JSON report: {error}") from None
    return judge.findings(diagnostics)


async def check_snapshot(
    files: Mapping[str, bytes],
    budget: TypeCheckBudget,
    *,
    ty: str | None = None,
    skipped: dict[str, str] | None = None,
) -> dict[str, list[TypeFinding]]:
    """ty's findings for the snapshot's Python files, by path (files without any are left out).

    Only `.py` files are written (into a fresh temporary directory, removed after) and checked;
    `ty` is the binary to run (default: the `ty` package's). A file that alone takes ty over the
    memory budget is not checked: it is put in `skipped` (path -> reason), if given. Raises
    TypeCheckFailed for an unsafe path, a missing binary, a timeout, a crash, memory over the
    budget for more than MAX_SKIPPED files or all of them, output over the budget, or output that
    is not ty's report. The event loop is never blocked: files are written and read in a thread.
    """
    deadline = time.monotonic() + budget.timeout_s
    sources = python_files(files)
    binary = ty or ty_binary()
    if not os.access(binary, os.X_OK):
        raise TypeCheckFailed(f"the ty binary {binary} is missing or not executable")
    if not sources:
        return {}
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="codereview-ty-"))
    stop = threading.Event()
    writing = asyncio.ensure_future(asyncio.to_thread(_write_tree, root, sources, stop))
    try:
        try:
            # Shielded: a cancelled check still waits (below) for the writer to stop before removing.
            await asyncio.shield(writing)
        except OSError as error:
            raise TypeCheckFailed(f"could not write the snapshot for ty: {error}") from None
        judge = rules.Judge(sources)
        found: dict[str, list[TypeFinding]] = {}
        set_aside: list[str] = []
        count = 0
        pending = chunks(sources, budget.chunk_bytes)
        while pending:
            paths = pending.pop(0)
            try:
                report = await _run_ty(binary, root, paths, budget, deadline)
            except _OutOfMemory:
                if len(paths) > 1:
                    half = len(paths) // 2
                    pending[:0] = [paths[:half], paths[half:]]
                    continue
                set_aside.append(paths[0])
                if len(set_aside) > MAX_SKIPPED or len(set_aside) == len(sources):
                    raise budget.out_of_memory(set_aside) from None
                await asyncio.to_thread((root / "src" / paths[0]).unlink)
                continue
            kept = await asyncio.to_thread(_judged, judge, report)
            for path, path_findings in kept.items():
                found.setdefault(path, []).extend(path_findings)
                count += len(path_findings)
            if count > MAX_FINDINGS:
                raise TypeCheckFailed(f"ty reported more than {MAX_FINDINGS} findings")
        if skipped is not None:
            skipped.update(dict.fromkeys(set_aside, budget.too_costly()))
        for path in set_aside:
            found.pop(path, None)
        return found
    finally:
        stop.set()
        await asyncio.wait([writing])
        if not writing.cancelled():
            writing.exception()  # retrieved: a write that failed after the check did is no news
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, root, ignore_errors=True))
