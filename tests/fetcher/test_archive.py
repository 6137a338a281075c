"""The archive reader on its own: names, the top folder, the pax sha, limits (no NATS, no HTTP)."""

from __future__ import annotations

import queue
import re
import tarfile

import pytest

from fetcher.archive import (
    MAX_NAME_LISTED,
    MAX_SKIPPED_LISTED,
    ArchiveContents,
    ArchiveLimits,
    read_archive,
    safe_path,
)
from fetcher.errors import ArchiveError, LimitExceededError
from tests.fetcher.helpers import gzip_bytes, member, raw_member, tar_bytes

LIMITS = ArchiveLimits(max_members=100, max_file_bytes=1 << 20, max_unpacked_bytes=1 << 24)


def read(archive: bytes, limits: ArchiveLimits = LIMITS, chunk: int = 7) -> ArchiveContents:
    """Read `archive` handed over in small chunks, as a download would."""
    chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
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
    limits = ArchiveLimits(max_members=100, max_file_bytes=4000, max_unpacked_bytes=1 << 24)
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
        ArchiveLimits(max_members=2000, max_file_bytes=100, max_unpacked_bytes=1 << 24),
        chunk=1 << 16,
    )

    assert len(contents.skipped) == MAX_SKIPPED_LISTED
    assert contents.skipped_unlisted == 1006 - MAX_SKIPPED_LISTED
    assert contents.skipped[long_name[:MAX_NAME_LISTED]] == "absolute path"
