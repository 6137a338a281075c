"""Read a repository .tar.gz as a stream and keep its Python files, in memory only.

Nothing is ever written to disk, so member names cannot point anywhere: a name is only a key
in the returned dict, and it is checked before it becomes one (no absolute paths, no `..`, it
must lie under the archive's top folder). Only regular `.py` files are kept; links, devices,
FIFOs and unsafe names are listed in `skipped` with the reason.

The download (event loop) and the reading (one worker thread: gunzip + `tarfile` in stream
mode) overlap, so when the last byte arrives most of the work is already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import posixpath
import queue
import re
import tarfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from fetcher.errors import ArchiveError, LimitExceededError


class _Decompressor(Protocol):
    """What zlib's (and ISA-L's) decompress objects offer."""

    @property
    def unconsumed_tail(self) -> bytes: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def eof(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _gzip_inflate() -> tuple[str, Callable[[], _Decompressor], tuple[type[Exception], ...]]:
    """ISA-L's gzip decompressor when installed (it inflates about twice as fast), else zlib's."""
    try:
        # Imported by name so that type checking does not depend on the optional package.
        isal_zlib = importlib.import_module("isal.isal_zlib")
    except ImportError:  # pragma: no cover - depends on the environment
        return "zlib", (lambda: zlib.decompressobj(wbits=31)), (zlib.error,)
    isal_error = cast("type[Exception]", isal_zlib.error)
    return (
        "isal",
        (lambda: cast("_Decompressor", isal_zlib.decompressobj(wbits=31))),
        (zlib.error, isal_error),
    )


# Which library inflates the archives ("isal" or "zlib"), for logs and benchmarks.
INFLATE_ENGINE, _inflater, _INFLATE_ERRORS = _gzip_inflate()

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# tarfile asks for this much at a time in stream mode.
_READ_SIZE = 256 * 1024

_NOT_REGULAR = {
    tarfile.SYMTYPE: "symbolic link, not followed",
    tarfile.LNKTYPE: "hard link, not followed",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


# A hostile archive may hold many unsafe members with long names: list a bounded number.
MAX_SKIPPED_LISTED = 1000
MAX_NAME_LISTED = 512


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_file_bytes: int
    max_unpacked_bytes: int


@dataclass
class ArchiveContents:
    """What a repository archive holds that we keep."""

    files: dict[str, bytes] = field(default_factory=dict)
    # Members left out on purpose (unsafe names, links, devices): path -> reason.
    skipped: dict[str, str] = field(default_factory=dict)
    # From the pax global header's `comment`, as GitHub writes it; None if absent or not a sha.
    commit_sha: str | None = None
    members: int = 0
    unpacked_bytes: int = 0
    # Skipped members beyond MAX_SKIPPED_LISTED, counted but not listed.
    skipped_unlisted: int = 0

    def skip(self, name: str, reason: str) -> None:
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped[name[:MAX_NAME_LISTED]] = reason
        else:
            self.skipped_unlisted += 1

    @property
    def file_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())


_END = b""


class _GunzipStream(io.RawIOBase):
    """A readable of the gunzipped bytes of chunks handed over through a queue.

    Counts every decompressed byte against FETCHER_MAX_UNPACKED_BYTES before handing it on,
    and never inflates more than one read's worth at a time, so a gzip bomb costs at most the
    limit in CPU and one read in memory. A stream that ends before gzip's end is truncated.
    """

    def __init__(self, chunks: queue.SimpleQueue[bytes], max_unpacked_bytes: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._limit = max_unpacked_bytes
        self._inflater = _inflater()
        self._ended = False
        self.unpacked = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        if self._ended:
            return _END
        chunk = self._chunks.get()
        if chunk is _END:
            self._ended = True
        return chunk

    def read(self, size: int | None = -1) -> bytes:
        want = _READ_SIZE if size is None or size < 0 else size
        if want == 0:
            return b""
        while True:
            inflater = self._inflater
            try:
                if inflater.unconsumed_tail:
                    data = inflater.decompress(inflater.unconsumed_tail, want)
                elif inflater.eof:
                    rest = inflater.unused_data or self._next_chunk()
                    if not rest:
                        return b""
                    # Another gzip member follows (gzip allows concatenation).
                    self._inflater = _inflater()
                    data = self._inflater.decompress(rest, want)
                else:
                    chunk = self._next_chunk()
                    if not chunk:
                        raise ArchiveError("the archive is truncated: the gzip stream ends early")
                    data = inflater.decompress(chunk, want)
            except _INFLATE_ERRORS as error:
                raise ArchiveError(f"the archive is not a valid .tar.gz: {error}") from error
            if data:
                self.unpacked += len(data)
                if self.unpacked > self._limit:
                    raise LimitExceededError(
                        "FETCHER_MAX_UNPACKED_BYTES",
                        self._limit,
                        "the archive unpacks to more bytes than allowed",
                    )
                return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def safe_path(name: str, top: str | None) -> tuple[str | None, str | None]:
    """(path inside the repository, None) for a safe member name, else (None, reason)."""
    if "\x00" in name:
        return None, "name contains NUL"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None, "name is not valid UTF-8"
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        return None, "absolute path"
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None, "path leaves the archive ('..')"
    if not parts or top is None or parts[0] != top:
        return None, "outside the archive's top folder"
    inner = parts[1:]
    if not inner:
        return None, "the top folder itself"
    return posixpath.join(*inner), None


def read_archive(chunks: queue.SimpleQueue[bytes], limits: ArchiveLimits) -> ArchiveContents:
    """Read a .tar.gz whose bytes arrive on `chunks` (b"" ends them); runs in a worker thread.

    Raises ArchiveError (corrupt or truncated) or LimitExceededError (a setting's limit passed).
    """
    stream = _GunzipStream(chunks, limits.max_unpacked_bytes)
    contents = ArchiveContents()
    top: str | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_READ_SIZE) as archive:
            comment = archive.pax_headers.get("comment", "").strip().lower()
            if _SHA.fullmatch(comment):
                contents.commit_sha = comment
            for member in archive:
                contents.members += 1
                if contents.members > limits.max_members:
                    raise LimitExceededError(
                        "FETCHER_MAX_MEMBERS", limits.max_members, "the archive has more members than allowed"
                    )
                if top is None:
                    # GitHub's archives hold one folder, owner-repo-sha7/; everything lies below it.
                    first = [part for part in member.name.split("/") if part not in ("", ".")]
                    if first and first[0] != ".." and not member.name.startswith("/"):
                        top = first[0]
                path, reason = safe_path(member.name, top)
                if member.isdir():
                    continue
                if reason is not None or path is None:
                    contents.skip(member.name, reason or "unsafe name")
                    continue
                if not member.isreg():
                    if path.endswith(".py") or member.type in _NOT_REGULAR:
                        contents.skip(path, _NOT_REGULAR.get(member.type, "not a regular file"))
                    continue
                if not path.endswith(".py"):
                    continue
                if member.size > limits.max_file_bytes:
                    raise LimitExceededError(
                        "FETCHER_MAX_FILE_BYTES",
                        limits.max_file_bytes,
                        f"{path} is {member.size} bytes",
                    )
                reader = archive.extractfile(member)
                if reader is None:  # pragma: no cover - isreg() members always have data
                    continue
                data = reader.read()
                if len(data) != member.size:
                    raise ArchiveError(f"the archive is truncated inside {path}")
                contents.files[path] = data
    except tarfile.TarError as error:
        if "unexpected end of data" in str(error):
            raise ArchiveError("the archive is truncated: the tar stream ends early") from error
        raise ArchiveError(f"the archive is not a valid tar file: {error}") from error
    except EOFError as error:
        raise ArchiveError(f"the archive is truncated: {error}") from error
    contents.unpacked_bytes = stream.unpacked
    return contents


class ArchiveReader:
    """Hand over downloaded chunks from the event loop; a worker thread reads them as they come.

    Use: `reader.start()`, `await reader.feed(chunk)` per chunk, `await reader.finish()` for the
    contents (raises what the reading raised). `abort()` stops the thread on a failed download.
    Chunks queue up unbounded: the download itself is capped by FETCHER_MAX_DOWNLOAD_BYTES.
    """

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self._chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._task: asyncio.Future[ArchiveContents] | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        self._task = asyncio.ensure_future(asyncio.to_thread(self._run))

    def _run(self) -> ArchiveContents:
        try:
            return read_archive(self._chunks, self._limits)
        finally:
            self._stopped.set()

    def failed(self) -> BaseException | None:
        """The reading's error, if it has already stopped with one (checked while downloading)."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return self._task.exception()
        return None

    def feed(self, chunk: bytes) -> None:
        """Hand over one chunk; raises at once what the reading failed with, if it did."""
        if error := self.failed():
            raise error
        if chunk and not self._stopped.is_set():
            self._chunks.put(chunk)

    async def finish(self) -> ArchiveContents:
        assert self._task is not None, "start() first"
        self._chunks.put(_END)
        return await self._task

    async def abort(self) -> None:
        """End the reading early (the download failed); waits for the thread, drops its result."""
        if self._task is None:
            return
        self._chunks.put(_END)
        # The download's failure is the one that matters; the reading's is a consequence.
        with contextlib.suppress(Exception):
            await self._task
