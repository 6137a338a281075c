"""Read a repository .tar.gz as a stream and keep its Python files and lint configuration, in memory only.

Nothing is ever written to disk, so member names cannot point anywhere: a name is only a key
in the returned dict, and it is checked before it becomes one (no absolute paths, no `..`, it
must lie under the archive's top folder). Only regular files are kept: `.py` files, and the
configuration files named in CONFIG_FILE_NAMES (ruff's, at any depth); links, devices, FIFOs,
unsafe names and configuration files over FETCHER_MAX_CONFIG_BYTES are listed in `skipped` with
the reason.

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
from typing import Protocol, Self, cast

from fetcher.errors import ArchiveError, LimitExceededError
from jobs_contract.messages import CONFIG_FILE_NAMES


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

# tarfile reads a GNU long name (type L/K) or a pax header (x/g) whole into memory, whatever size
# its header announces, and follows chains of them by recursion. GitHub writes one small pax
# global header (the commit sha) and a pax or long-name header only for a path over 100 bytes,
# so anything past these is hostile and fails the job before tarfile reads it.
MAX_EXTENDED_HEADER_BYTES = 64 * 1024
MAX_EXTENDED_HEADERS_IN_A_ROW = 8
# Linux's PATH_MAX: no checkout could hold a longer path.
MAX_NAME_BYTES = 4096
# Downloaded chunks waiting for the reading thread (httpx hands over at most 64 KiB at a time),
# so a download that outruns the reading waits instead of piling up in memory.
MAX_QUEUED_CHUNKS = 64

# The all-zero block that ends an archive (tarfile's own error type, missing from its stubs).
_EOF_HEADER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_EXTENDED_HEADERS = {
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
}


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_file_bytes: int
    max_unpacked_bytes: int
    # All kept files together (.py and configuration): what a job holds in memory and stores.
    max_snapshot_bytes: int
    # A configuration file larger than this is left out (listed in `skipped`), not a failure:
    # the repository's Python files are still worth reviewing without it.
    max_config_bytes: int


@dataclass
class ArchiveContents:
    """What a repository archive holds that we keep."""

    files: dict[str, bytes] = field(default_factory=dict)
    # The lint configuration files (CONFIG_FILE_NAMES), apart from `files`, which holds only Python.
    configs: dict[str, bytes] = field(default_factory=dict)
    # Members left out on purpose (unsafe names, links, devices, large configs): path -> reason.
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
        """The bytes of the Python files (what a job reports), configuration files not counted."""
        return sum(len(data) for data in self.files.values())


_END = b""
_FEED_POLL_S = 0.002


class _GunzipStream(io.RawIOBase):
    """A readable of the gunzipped bytes of chunks handed over through a queue.

    Counts every decompressed byte against FETCHER_MAX_UNPACKED_BYTES before handing it on,
    and never inflates more than one read's worth at a time, so a gzip bomb costs at most the
    limit in CPU and one read in memory. A stream that ends before gzip's end is truncated.
    """

    def __init__(
        self,
        chunks: queue.Queue[bytes],
        max_unpacked_bytes: int,
        inflater: Callable[[], _Decompressor] = _inflater,
        aborted: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self._aborted = aborted or threading.Event()
        self._chunks = chunks
        self._limit = max_unpacked_bytes
        self._new_inflater = inflater
        self._inflater = inflater()
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
            if self._aborted.is_set():
                # The job ended (deadline, failed download): stop within one read, not at the end.
                raise ArchiveError("the reading was stopped")
            inflater = self._inflater
            try:
                # eof first: at a member's end zlib leaves the next member's bytes in both
                # unused_data and unconsumed_tail, and inflating that tail again never ends.
                if inflater.eof:
                    rest = inflater.unused_data or self._next_chunk()
                    if not rest:
                        return b""
                    # Another gzip member follows (gzip allows concatenation).
                    self._inflater = self._new_inflater()
                    data = self._inflater.decompress(rest, want)
                elif inflater.unconsumed_tail:
                    data = inflater.decompress(inflater.unconsumed_tail, want)
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


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header reading, with every header's size and the archive's end checked first.

    tarfile itself takes a header cut short, a block that is not a header, or no end-of-archive
    marker after the first member for the end of the archive, so a truncated download would
    look complete; here each of them fails. Sparse members (never in GitHub's archives) are
    refused: tarfile reads their maps into memory, as long as the archive says.
    """

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> Self:
        fileobj = archive.fileobj
        assert fileobj is not None
        buf = fileobj.read(tarfile.BLOCKSIZE)
        if len(buf) != tarfile.BLOCKSIZE:
            where = "inside a header" if buf else "without its end-of-archive marker"
            raise ArchiveError(f"the archive is truncated: the tar stream ends {where}")
        try:
            member = cls.frombuf(buf, archive.encoding, archive.errors)
        except _EOF_HEADER:
            raise  # the end-of-archive marker: tarfile stops here
        except tarfile.HeaderError as error:
            raise ArchiveError(f"the archive is not a valid tar file: {error}") from error
        member.offset = fileobj.tell() - tarfile.BLOCKSIZE
        return cast("Self", member._proc_member(archive))

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type not in _EXTENDED_HEADERS:
            member: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
            return member
        if self.size > MAX_EXTENDED_HEADER_BYTES:
            raise ArchiveError(
                f"the archive has a long-name or pax header of {self.size} bytes; "
                f"at most {MAX_EXTENDED_HEADER_BYTES} are read"
            )
        # Each extended header makes tarfile read the next header recursively: bound the chain.
        depth: int = getattr(archive, "_codereview_headers_in_a_row", 0)
        if depth >= MAX_EXTENDED_HEADERS_IN_A_ROW:
            raise ArchiveError(
                f"the archive has more than {MAX_EXTENDED_HEADERS_IN_A_ROW} long-name or pax headers in a row"
            )
        archive._codereview_headers_in_a_row = depth + 1  # type: ignore[attr-defined]
        try:
            member = super()._proc_member(archive)  # type: ignore[misc]
        finally:
            archive._codereview_headers_in_a_row = depth  # type: ignore[attr-defined]
        if len(member.name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ArchiveError(
                f"the archive has a member name of over {MAX_NAME_BYTES} bytes: {member.name[:100]!r}..."
            )
        return member

    def _refuse_sparse(self, *args: object) -> tarfile.TarInfo:
        raise ArchiveError("the archive holds a sparse member, which GitHub never writes")

    _proc_sparse = _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


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


def read_archive(
    chunks: queue.Queue[bytes],
    limits: ArchiveLimits,
    inflater: Callable[[], _Decompressor] = _inflater,
    aborted: threading.Event | None = None,
) -> ArchiveContents:
    """Read a .tar.gz whose bytes arrive on `chunks` (b"" ends them); runs in a worker thread.

    Raises ArchiveError (corrupt or truncated anywhere, hostile headers) or LimitExceededError
    (a setting's limit passed). Memory: the kept files, one file being read, one read of
    inflated data and at most MAX_EXTENDED_HEADER_BYTES of header, whatever the archive.
    """
    stream = _GunzipStream(chunks, limits.max_unpacked_bytes, inflater, aborted)
    contents = ArchiveContents()
    top: str | None = None
    kept_bytes = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_READ_SIZE, tarinfo=_BoundedTarInfo) as archive:
            comment = archive.pax_headers.get("comment", "").strip().lower()
            if _SHA.fullmatch(comment):
                contents.commit_sha = comment
            for member in archive:
                # tarfile keeps every member read, even in stream mode (up to FETCHER_MAX_MEMBERS
                # of them, each with a name of up to 4 KiB): drop them, nothing here reads them back.
                archive.members.clear()  # type: ignore[attr-defined]  # untyped in typeshed
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
                # Only the name counts: the path was vetted above, and a link named
                # pyproject.toml is refused below like any other link.
                is_config = posixpath.basename(path) in CONFIG_FILE_NAMES
                if not member.isreg():
                    if path.endswith(".py") or is_config or member.type in _NOT_REGULAR:
                        contents.skip(path, _NOT_REGULAR.get(member.type, "not a regular file"))
                    continue
                if is_config:
                    if member.size > limits.max_config_bytes:
                        limit = limits.max_config_bytes
                        contents.skip(
                            path, f"{member.size} bytes: over the limit FETCHER_MAX_CONFIG_BYTES={limit}"
                        )
                        continue
                elif not path.endswith(".py"):
                    continue
                elif member.size > limits.max_file_bytes:
                    raise LimitExceededError(
                        "FETCHER_MAX_FILE_BYTES",
                        limits.max_file_bytes,
                        f"{path} is {member.size} bytes",
                    )
                kept_bytes += member.size
                if kept_bytes > limits.max_snapshot_bytes:
                    raise LimitExceededError(
                        "FETCHER_MAX_SNAPSHOT_BYTES",
                        limits.max_snapshot_bytes,
                        "the repository's Python and configuration files come to more than "
                        f"{limits.max_snapshot_bytes} bytes",
                    )
                reader = archive.extractfile(member)
                if reader is None:  # pragma: no cover - isreg() members always have data
                    continue
                data = reader.read()
                if len(data) != member.size:
                    raise ArchiveError(f"the archive is truncated inside {path}")
                (contents.configs if is_config else contents.files)[path] = data
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
    contents (raises what the reading raised). `await reader.abort()` stops the thread on a
    failed download. At most MAX_QUEUED_CHUNKS chunks wait for the thread: `feed` waits while
    that many do, so a download never runs ahead of the reading by more than a few MiB.
    """

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self._chunks: queue.Queue[bytes] = queue.Queue(maxsize=MAX_QUEUED_CHUNKS)
        self._task: asyncio.Future[ArchiveContents] | None = None
        self._stopped = threading.Event()
        self._aborted = threading.Event()

    def start(self) -> None:
        self._task = asyncio.ensure_future(asyncio.to_thread(self._run))

    def _run(self) -> ArchiveContents:
        try:
            return read_archive(self._chunks, self._limits, aborted=self._aborted)
        finally:
            self._stopped.set()

    def failed(self) -> BaseException | None:
        """The reading's error, if it has already stopped with one (checked while downloading)."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return self._task.exception()
        return None

    async def _put(self, chunk: bytes) -> None:
        # A short poll: the thread frees room within one read, and a thread that stopped
        # (done or failed) takes nothing more.
        while not self._stopped.is_set():
            try:
                self._chunks.put_nowait(chunk)
                return
            except queue.Full:
                await asyncio.sleep(_FEED_POLL_S)

    async def feed(self, chunk: bytes) -> None:
        """Hand over one chunk; raises at once what the reading failed with, if it did."""
        if error := self.failed():
            raise error
        if chunk:
            await self._put(chunk)
            if error := self.failed():
                raise error

    async def finish(self) -> ArchiveContents:
        assert self._task is not None, "start() first"
        await self._put(_END)
        return await self._task

    async def abort(self) -> None:
        """End the reading early (the download failed); waits for the thread, drops its result."""
        if self._task is None:
            return
        self._aborted.set()
        await self._put(_END)
        # The download's failure is the one that matters; the reading's is a consequence.
        with contextlib.suppress(Exception):
            await self._task
