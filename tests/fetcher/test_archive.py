"""The archive reader on its own: names, the top folder, the pax sha, limits (no NATS, no HTTP)."""

from __future__ import annotations

import queue
import re
import secrets
import tarfile
import threading
import tracemalloc
import zlib

import pytest

from fetcher.archive import (
    MAX_EXTENDED_HEADER_BYTES,
    MAX_EXTENDED_HEADERS_IN_A_ROW,
    MAX_NAME_BYTES,
    MAX_NAME_LISTED,
    MAX_SKIPPED_LISTED,
    ArchiveContents,
    ArchiveLimits,
    ArchiveReader,
    _inflater,
    read_archive,
    safe_path,
)
from fetcher.errors import ArchiveError, LimitExceededError
from tests.fetcher.helpers import gzip_bytes, member, raw_member, tar_bytes

LIMITS = ArchiveLimits(
    max_members=100,
    max_file_bytes=1 << 20,
    max_unpacked_bytes=1 << 24,
    max_snapshot_bytes=1 << 22,
    max_config_bytes=1 << 20,
)


def read(archive: bytes, limits: ArchiveLimits = LIMITS, chunk: int = 7) -> ArchiveContents:
    """Read `archive` handed over in small chunks, as a download would."""
    chunks: queue.Queue[bytes] = queue.Queue()
    for start in range(0, len(archive), chunk):
        chunks.put(archive[start : start + chunk])
    chunks.put(b"")
    return read_archive(chunks, limits)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("top/a.py", ("a.py", None)),
        ("top/./pkg//b.py", ("pkg/b.py", None)),
        ("./top/c.py", ("c.py", None)),
        ("top", (None, "the top folder itself")),
        ("other/a.py", (None, "outside the archive's top folder")),
        ("/etc/passwd", (None, "absolute path")),
        ("C:\\\\x.py", (None, "absolute path")),
        ("top/../../x.py", (None, "path leaves the archive ('..')")),
        ("top/a\udcff.py", (None, "name is not valid UTF-8")),
    ],
)
def test_safe_path(name: str, expected: tuple[str | None, str | None]) -> None:
    assert safe_path(name, "top") == expected


def test_python_files_under_the_top_folder_and_the_pax_sha() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    archive = tar_bytes(
        [
            (member("top", tarfile.DIRTYPE), None),
            (member("top/a.py"), b"a = 1\n"),
            (member("top/README"), b"hello"),
            (member("top/pkg/b.py"), b"b = 2\n"),
        ],
        pax_comment=sha.upper(),
    )

    contents = read(gzip_bytes(archive))

    assert contents.commit_sha == sha
    assert contents.files == {"a.py": b"a = 1\n", "pkg/b.py": b"b = 2\n"}
    assert (contents.members, contents.skipped) == (4, {})
    # Counted up to the end-of-archive blocks (the padding after them is never read).
    assert 4 * tarfile.BLOCKSIZE < contents.unpacked_bytes <= len(archive)


def test_a_comment_that_is_no_sha_is_ignored() -> None:
    archive = tar_bytes([(member("top/a.py"), b"")], pax_comment="made by hand")
    assert read(gzip_bytes(archive)).commit_sha is None


def test_concatenated_gzip_members_are_one_stream() -> None:
    body = raw_member("top/a.py", b"a = 1\n") + raw_member("top/b.py", b"b = 2\n") + b"\0" * 1024
    contents = read(gzip_bytes(body[:700]) + gzip_bytes(body[700:]))
    assert sorted(contents.files) == ["a.py", "b.py"]


def test_a_file_cut_short_inside_its_data_is_truncated() -> None:
    body = raw_member("top/a.py", b"x" * 5000)[:3000]
    with pytest.raises(ArchiveError, match="truncated"):
        read(gzip_bytes(body))


def test_the_file_limit_counts_only_python_files() -> None:
    archive = tar_bytes([(member("top/data.bin"), b"\0" * 5000), (member("top/a.py"), b"a = 1\n")])
    limits = ArchiveLimits(
        max_members=100,
        max_file_bytes=4000,
        max_unpacked_bytes=1 << 24,
        max_snapshot_bytes=1 << 22,
        max_config_bytes=1 << 20,
    )
    assert list(read(gzip_bytes(archive), limits).files) == ["a.py"]

    big = tar_bytes([(member("top/big.py"), b"#" * 5000)])
    with pytest.raises(
        LimitExceededError,
        match=re.escape("big.py is 5000 bytes: over the limit FETCHER_MAX_FILE_BYTES=4000"),
    ):
        read(gzip_bytes(big), limits)


def test_skipped_members_are_listed_up_to_a_bound() -> None:
    links = [(member(f"top/l{i}", tarfile.SYMTYPE, linkname="/etc/passwd"), None) for i in range(1005)]
    long_name = "/" + "x" * 2000
    archive = tar_bytes([(member("top", tarfile.DIRTYPE), None), (member(long_name), b""), *links])

    contents = read(
        gzip_bytes(archive),
        ArchiveLimits(
            max_members=2000,
            max_file_bytes=100,
            max_unpacked_bytes=1 << 24,
            max_snapshot_bytes=1 << 22,
            max_config_bytes=1 << 20,
        ),
        chunk=1 << 16,
    )

    assert len(contents.skipped) == MAX_SKIPPED_LISTED
    assert contents.skipped_unlisted == 1006 - MAX_SKIPPED_LISTED
    assert contents.skipped[long_name[:MAX_NAME_LISTED]] == "absolute path"


# -- headers, truncation and the gunzip fallback (issue #11) -------------------------------------


def extended_header(kind: bytes, size: int) -> bytes:
    """A long-name (L/K) or pax (x/g) header announcing `size` bytes of content."""
    info = member("././@LongLink", kind)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "kind", [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE]
)
def test_a_huge_long_name_or_pax_header_fails_before_it_is_read(kind: bytes) -> None:
    # 1 GiB announced, 1 MiB sent: tarfile alone would read the announced size into memory.
    body = raw_member("top/a.py", b"a = 1\n") + extended_header(kind, 1 << 30) + b"n" * (1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(
            ArchiveError, match=f"header of {1 << 30} bytes; at most {MAX_EXTENDED_HEADER_BYTES}"
        ):
            read(gzip_bytes(body), chunk=1 << 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_long_name_up_to_the_limits_is_read() -> None:
    name = "top/" + "d/" * 1000 + "deep.py"
    contents = read(gzip_bytes(tar_bytes([(member(name), b"deep = 1\n")])), chunk=1 << 12)
    assert contents.files == {name[4:]: b"deep = 1\n"}


def test_a_member_name_over_the_limit_fails() -> None:
    name = "top/" + "x" * MAX_NAME_BYTES + ".py"
    with pytest.raises(ArchiveError, match=f"member name of over {MAX_NAME_BYTES} bytes"):
        read(gzip_bytes(tar_bytes([(member(name), b"")])), chunk=1 << 12)


def test_a_chain_of_long_name_headers_fails() -> None:
    one = extended_header(tarfile.GNUTYPE_LONGNAME, 10) + b"top/x.py\0\0".ljust(tarfile.BLOCKSIZE, b"\0")
    body = one * (MAX_EXTENDED_HEADERS_IN_A_ROW + 1) + raw_member("top/a.py", b"") + b"\0" * 1024
    with pytest.raises(ArchiveError, match="long-name or pax headers in a row"):
        read(gzip_bytes(body), chunk=1 << 12)


def test_sparse_members_are_refused() -> None:
    gnu_sparse = member("top/s.py", tarfile.GNUTYPE_SPARSE).tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")
    with pytest.raises(ArchiveError, match="sparse"):
        read(gzip_bytes(gnu_sparse + b"\0" * 1024))
    pax_sparse = member("top/s.py")
    pax_sparse.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "top/s.py"}
    with pytest.raises(ArchiveError, match="sparse"):
        read(gzip_bytes(tar_bytes([(pax_sparse, b"1\n0\n4\n" + b"\0" * 506 + b"data")])))


def test_a_tar_cut_anywhere_before_its_end_marker_fails() -> None:
    body = (
        raw_member("top/a.py", b"a = 1\n")
        + raw_member("top/skip.txt", b"t" * 700)
        + raw_member("top/b.py", b"b")
    )
    for cut in [*range(1, len(body), 97), *range(tarfile.BLOCKSIZE, len(body) + 1, tarfile.BLOCKSIZE)]:
        with pytest.raises(ArchiveError, match="truncated"):
            read(gzip_bytes(body[:cut]), chunk=1 << 12)
    assert sorted(read(gzip_bytes(body + b"\0" * 1024)).files) == ["a.py", "b.py"]


def test_a_block_that_is_no_header_after_the_first_member_fails() -> None:
    body = raw_member("top/a.py", b"a = 1\n") + b"garbage!" * 64 + raw_member("top/b.py", b"b") + b"\0" * 1024
    with pytest.raises(ArchiveError, match="not a valid tar file"):
        read(gzip_bytes(body))


def test_the_snapshot_limit_counts_all_python_files_together() -> None:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (member(f"top/m{i}.py"), b"#" * 100) for i in range(3)
    ]
    archive = tar_bytes([*members, (member("top/x.bin"), b"0" * 900)])
    limits = ArchiveLimits(
        max_members=100,
        max_file_bytes=100,
        max_unpacked_bytes=1 << 24,
        max_snapshot_bytes=250,
        max_config_bytes=1 << 20,
    )
    with pytest.raises(LimitExceededError, match="over the limit FETCHER_MAX_SNAPSHOT_BYTES=250"):
        read(gzip_bytes(archive), limits)
    ok = ArchiveLimits(
        max_members=100,
        max_file_bytes=100,
        max_unpacked_bytes=1 << 24,
        max_snapshot_bytes=300,
        max_config_bytes=1 << 20,
    )
    assert len(read(gzip_bytes(archive), ok).files) == 3


@pytest.mark.parametrize("engine", ["default", "zlib"])
def test_multi_member_gzip_with_a_member_over_one_read(engine: str) -> None:
    # The first member inflates to more than one read (256 KiB), then another member follows:
    # the pure-zlib path once looped forever here.
    big = secrets.token_hex(200 * 1024).encode()
    body = raw_member("top/big.py", big) + raw_member("top/b.py", b"b = 2\n") + b"\0" * 1024
    cut = len(body) - 1536
    archive = gzip_bytes(body[:cut]) + gzip_bytes(body[cut:])
    chunks: queue.Queue[bytes] = queue.Queue()
    chunks.put(archive)
    chunks.put(b"")
    inflater = (lambda: zlib.decompressobj(wbits=31)) if engine == "zlib" else _inflater
    found: list[ArchiveContents] = []
    worker = threading.Thread(
        target=lambda: found.append(read_archive(chunks, LIMITS, inflater)), daemon=True
    )
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the gunzip never ended"
    assert found[0].files == {"big.py": big, "b.py": b"b = 2\n"}


def test_memory_does_not_grow_with_the_number_of_members() -> None:
    # tarfile keeps every member it read, even in stream mode: 2,000 members with 3 KB names
    # held about 7 MB (100,000 of them, FETCHER_MAX_MEMBERS, about 350 MB).
    names: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (member(f"top/{i:05d}" + "x" * 3000 + ".txt"), b"") for i in range(2000)
    ]
    archive = gzip_bytes(tar_bytes(names))
    limits = ArchiveLimits(
        max_members=10_000,
        max_file_bytes=100,
        max_unpacked_bytes=1 << 30,
        max_snapshot_bytes=100,
        max_config_bytes=1 << 20,
    )
    tracemalloc.start()
    try:
        contents = read(archive, limits, chunk=1 << 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert contents.members == 2000
    assert peak < 2 << 20


async def test_abort_stops_the_reading_thread_within_a_read() -> None:
    # Seconds of tarfile work queued up (20,000 members with long pax names), then the job ends:
    # the thread stops at its next read instead of parsing the rest for nothing.
    names: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (member(f"top/{i:05d}" + "x" * 3000 + ".txt"), b"") for i in range(20_000)
    ]
    archive = gzip_bytes(tar_bytes(names))
    reader = ArchiveReader(
        ArchiveLimits(
            max_members=100_000,
            max_file_bytes=100,
            max_unpacked_bytes=1 << 30,
            max_snapshot_bytes=100,
            max_config_bytes=1 << 20,
        )
    )
    reader.start()
    for start in range(0, len(archive), 1 << 16):
        await reader.feed(archive[start : start + (1 << 16)])

    await reader.abort()

    error = reader.failed()
    assert isinstance(error, ArchiveError)
    assert str(error) == "the reading was stopped"


# -- lint configuration files -------------------------------------------------------------------


def test_configuration_files_are_kept_apart_at_the_root_and_nested() -> None:
    archive = tar_bytes(
        [
            (member("top/pyproject.toml"), b"[tool.ruff]\nline-length = 100\n"),
            (member("top/pkg/ruff.toml"), b"[lint]\nselect = ['E']\n"),
            (member("top/pkg/sub/.ruff.toml"), b"extend = '../ruff.toml'\n"),
            (member("top/pkg/a.py"), b"a = 1\n"),
            # Only these exact names: look-alikes are neither configuration nor Python.
            (member("top/pyproject.toml.bak"), b"x"),
            (member("top/mypyproject.toml"), b"x"),
            (member("top/setup.cfg"), b"[flake8]\n"),
            (member("top/pkg/Ruff.toml"), b"x"),
        ]
    )

    contents = read(gzip_bytes(archive))

    assert contents.files == {"pkg/a.py": b"a = 1\n"}
    assert contents.configs == {
        "pyproject.toml": b"[tool.ruff]\nline-length = 100\n",
        "pkg/ruff.toml": b"[lint]\nselect = ['E']\n",
        "pkg/sub/.ruff.toml": b"extend = '../ruff.toml'\n",
    }
    assert contents.skipped == {}
    # What a job reports counts the Python files only.
    assert contents.file_bytes == len(b"a = 1\n")


def test_a_configuration_file_over_its_limit_is_skipped_naming_the_setting() -> None:
    archive = tar_bytes(
        [
            (member("top/pyproject.toml"), b"#" * 101),
            (member("top/pkg/ruff.toml"), b"#" * 100),
            (member("top/a.py"), b"a = 1\n"),
        ]
    )
    limits = ArchiveLimits(
        max_members=100,
        max_file_bytes=1 << 20,
        max_unpacked_bytes=1 << 24,
        max_snapshot_bytes=1 << 22,
        max_config_bytes=100,
    )

    contents = read(gzip_bytes(archive), limits)

    assert contents.configs == {"pkg/ruff.toml": b"#" * 100}
    assert contents.skipped == {"pyproject.toml": "101 bytes: over the limit FETCHER_MAX_CONFIG_BYTES=100"}
    assert contents.files == {"a.py": b"a = 1\n"}


def test_configuration_files_that_are_links_devices_or_unsafe_are_never_kept() -> None:
    archive = tar_bytes(
        [
            (member("top", tarfile.DIRTYPE), None),
            (member("top/pyproject.toml", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
            (member("top/pkg/ruff.toml", tarfile.LNKTYPE, linkname="top/secret"), None),
            (member("top/pkg/.ruff.toml", tarfile.FIFOTYPE), None),
            (member("top/../ruff.toml"), b"[lint]\n"),
            (member("/etc/ruff.toml"), b"[lint]\n"),
            (member("elsewhere/pyproject.toml"), b"[tool.ruff]\n"),
            (member("top/deep/pyproject.toml"), b"[tool.ruff]\n"),
        ]
    )

    contents = read(gzip_bytes(archive))

    assert contents.configs == {"deep/pyproject.toml": b"[tool.ruff]\n"}
    assert contents.skipped == {
        "pyproject.toml": "symbolic link, not followed",
        "pkg/ruff.toml": "hard link, not followed",
        "pkg/.ruff.toml": "FIFO",
        "top/../ruff.toml": "path leaves the archive ('..')",
        "/etc/ruff.toml": "absolute path",
        "elsewhere/pyproject.toml": "outside the archive's top folder",
    }


def test_configuration_files_count_toward_the_snapshot_limit() -> None:
    archive = tar_bytes([(member("top/a.py"), b"#" * 100), (member("top/pyproject.toml"), b"#" * 100)])
    limits = ArchiveLimits(
        max_members=100,
        max_file_bytes=100,
        max_unpacked_bytes=1 << 24,
        max_snapshot_bytes=150,
        max_config_bytes=100,
    )
    with pytest.raises(
        LimitExceededError,
        match=re.escape(
            "Python and configuration files come to more than 150 bytes: "
            "over the limit FETCHER_MAX_SNAPSHOT_BYTES=150"
        ),
    ):
        read(gzip_bytes(archive), limits)
