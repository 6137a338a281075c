"""One verified model download: resumable, bounded in size and time, put in place only when its hash matches.

The file grows as `<name>.part` beside its destination; an interrupted download resumes from
there with an HTTP Range request. Only a file whose size and SHA-256 match the pinned ones is
renamed (atomically) to its final name, so a file under its final name is always a verified one.
A `<name>.lock` file keeps two processes from writing the same `.part` at once; it is removed
when the download ends (see `_exclusive` for why that is safe).

Redirects are followed as HuggingFace sends them (to its CDN), at most MAX_REDIRECTS of them,
and only to https URLs (http only on a loopback host, as the tests serve): a redirect cannot
downgrade the download to plain http elsewhere or send it to another scheme.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, TextIO

import httpx

if TYPE_CHECKING:
    from rich.progress import TaskID

GGUF_MAGIC = b"GGUF"
CHUNK = 1 << 20
# No single read waits longer than this (nor past the whole download's deadline).
READ_TIMEOUT_S = 60.0
# HuggingFace answers a resolve URL with one redirect (to its CDN); a chain longer than this is a loop.
MAX_REDIRECTS = 5


class DownloadError(Exception):
    """The file could not be downloaded and verified; the message says why."""


class Progress(Protocol):
    """Told how a download advances; says so to a person."""

    def start(self, name: str, total: int, done: int) -> None: ...

    def advance(self, size: int) -> None: ...

    def stop(self) -> None: ...


class PlainProgress:
    """One line per tenth of the file, for logs and other streams that are not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._name = ""
        self._total = 1
        self._done = 0
        self._tenth = -1

    def start(self, name: str, total: int, done: int) -> None:
        self._name, self._total, self._done, self._tenth = name, max(total, 1), done, -1
        self._report()

    def advance(self, size: int) -> None:
        self._done += size
        self._report()

    def stop(self) -> None:
        self._stream.flush()

    def _report(self) -> None:
        tenth = self._done * 10 // self._total
        if tenth == self._tenth:
            return
        self._tenth = tenth
        self._say(
            f"downloading {self._name}: {tenth * 10}% ({self._done / 1e6:.1f} of {self._total / 1e6:.1f} MB)"
        )

    def _say(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


class LoggedProgress(PlainProgress):
    """The same ten lines as log records: what `python -m model_host` uses, so that a download at
    start is in the one log format (LOG_FORMAT=json included) and not loose lines on stderr."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def _say(self, line: str) -> None:
        logging.getLogger("model_host.download").info("%s", line)


class RichProgress:
    """A Rich progress bar (size, speed, time left) on a terminal's stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def start(self, name: str, total: int, done: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(f"downloading {name}", total=total, completed=done)

    def advance(self, size: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, size)

    def stop(self) -> None:
        self._bar.stop()


def default_progress() -> Progress:
    """A Rich bar when stderr is a terminal, plain lines on stderr otherwise."""
    return RichProgress() if sys.stderr.isatty() else PlainProgress(sys.stderr)


@contextmanager
def _exclusive(lock_path: Path, deadline: float) -> Iterator[None]:
    """Hold the lock `lock_path` (flock) for the block; the file is removed when the block ends.

    Removing a lock file is safe only with a check: a process waiting on the old file gets its
    lock once the holder is done, but the file is gone by then, and a third process may have
    made a new one and locked that. So whoever gets a lock checks that its file is still the one
    at `lock_path`, and starts over if not; the holder removes the file while it still holds it.
    Raises DownloadError when the lock is still not ours at `deadline`.
    """
    lock = _locked(lock_path, deadline)
    try:
        yield
    finally:
        # A lock file that cannot be removed is only clutter: it must not replace the result.
        with suppress(OSError):
            lock_path.unlink(missing_ok=True)
        lock.close()  # which releases the lock


def _locked(lock_path: Path, deadline: float) -> IO[str]:
    while True:
        lock = lock_path.open("a")
        try:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        message = f"another process kept {lock_path} locked past the deadline"
                        raise DownloadError(message) from None
                    time.sleep(0.2)
            if _is_at(lock, lock_path):
                return lock
        except BaseException:
            lock.close()
            raise
        lock.close()  # the holder before us removed this file: lock the one there now


def _is_at(file: IO[str], path: Path) -> bool:
    """Whether the open `file` is still the file at `path` (not removed, not replaced)."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(file.fileno())
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def _allowed(url: httpx.URL) -> bool:
    """https, or http on a loopback host (the tests' servers): what the download may fetch."""
    if url.scheme == "https":
        return True
    if url.scheme != "http":
        return False
    if url.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(url.host).is_loopback
    except ValueError:
        return False


def _hash_of(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest, size


def download(
    url: str, dest: Path, *, sha256: str, size: int, deadline_s: float, progress: Progress | None = None
) -> Path:
    """Put the file at `url` in `dest`, verified; return `dest`. A `dest` already there is kept as it is.

    Raises DownloadError when the server fails or refuses, the body is not a GGUF file, is larger
    than `size`, ends short, takes longer than `deadline_s` in all, or has another SHA-256. A
    `.part` whose content is wrong is deleted; one cut short by the network or the deadline is
    kept, and the next call resumes it.
    """
    deadline = time.monotonic() + deadline_s
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest.with_name(dest.name + ".lock"), deadline):
        if dest.is_file():
            return dest
        part = dest.with_name(dest.name + ".part")
        try:
            _fetch(url, part, sha256=sha256, size=size, deadline=deadline, progress=progress)
        except OSError as exc:
            raise DownloadError(f"cannot write {part}: {exc.strerror or exc}") from exc
        part.replace(dest)
    return dest


def _fetch(
    url: str, part: Path, *, sha256: str, size: int, deadline: float, progress: Progress | None
) -> None:
    digest, have = _hash_of(part) if part.is_file() else (hashlib.sha256(), 0)
    if have > size:
        part.unlink()
        digest, have = hashlib.sha256(), 0
    if have < size:
        progress = progress or default_progress()
        try:
            digest, have = _receive(url, part, digest, have, size=size, deadline=deadline, progress=progress)
        finally:
            progress.stop()
    if have < size:
        raise DownloadError(f"{url} ended after {have} of {size} bytes; run again to resume")
    if digest.hexdigest() != sha256:
        part.unlink()
        raise DownloadError(f"{url}: SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}")


def _receive(
    url: str,
    part: Path,
    digest: hashlib._Hash,
    have: int,
    *,
    size: int,
    deadline: float,
    progress: Progress,
) -> tuple[hashlib._Hash, int]:
    # Identity: Range offsets count the bytes of the file itself, never of a compressed body.
    headers = {"User-Agent": "codereview-model-host", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    remaining = max(deadline - time.monotonic(), 0.001)
    timeout = httpx.Timeout(min(READ_TIMEOUT_S, remaining))

    def refuse_insecure(request: httpx.Request) -> None:
        # Called for the first request and for each redirect before it is sent.
        if not _allowed(request.url):
            raise DownloadError(
                f"{url}: refused to fetch {request.url}: only https URLs are downloaded "
                "(http only from a loopback host)"
            )

    try:
        with (
            httpx.Client(
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                timeout=timeout,
                event_hooks={"request": [refuse_insecure]},
            ) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 206 and have:
                if not response.headers.get("content-range", "").startswith(f"bytes {have}-"):
                    raise DownloadError(f"{url} answered the resume from byte {have} with another range")
                mode = "ab"
            elif response.status_code == 416 and have:
                # The file there is shorter than what we have of it: it is not the one pinned.
                part.unlink()
                raise DownloadError(f"{url} refused the resume from byte {have}; the partial file is deleted")
            elif response.status_code == 200:
                # A server that ignores Range sends the whole file again.
                digest, have, mode = hashlib.sha256(), 0, "wb"
            else:
                raise DownloadError(f"{url} answered HTTP {response.status_code}")
            progress.start(part.name.removesuffix(".part"), size, have)
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and have + int(length) > size:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"{url} is {have + int(length)} bytes: "
                    f"more than {size} bytes, the size the catalogue pins"
                )
            with part.open(mode) as out:
                # The file's first bytes, held until there are enough to check the magic: a
                # server may send them in pieces smaller than the magic.
                head = b"" if have == 0 else GGUF_MAGIC
                # As the bytes arrive, so what came before a cut is kept for the resume.
                for piece in response.iter_bytes():
                    chunk = piece
                    if len(head) < len(GGUF_MAGIC):
                        head += piece
                        if head[: len(GGUF_MAGIC)] != GGUF_MAGIC[: len(head)]:
                            out.close()
                            part.unlink()
                            raise DownloadError(f"{url} is not a GGUF file (it starts with {head[:4]!r})")
                        if len(head) < len(GGUF_MAGIC):
                            continue
                        chunk = head
                    if have + len(chunk) > size:
                        out.close()
                        part.unlink()
                        raise DownloadError(f"{url} sent more than {size} bytes, the size the catalogue pins")
                    out.write(chunk)
                    digest.update(chunk)
                    have += len(chunk)
                    progress.advance(len(chunk))
                    if time.monotonic() > deadline and have < size:
                        raise _past_deadline(url, have, size)
    except httpx.TooManyRedirects:
        raise DownloadError(f"{url}: more than {MAX_REDIRECTS} redirects") from None
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= deadline:
            # Reads wait at most until the deadline: this timeout is the deadline's.
            raise _past_deadline(url, have, size) from exc
        raise DownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
    return digest, have


def _past_deadline(url: str, have: int, size: int) -> DownloadError:
    return DownloadError(
        f"{url}: the download's deadline passed after {have} of {size} bytes; run again to resume"
    )
