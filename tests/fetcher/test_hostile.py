"""Hostile archives: every one fails the job or is skipped with a reason, and the fetcher keeps serving."""

from __future__ import annotations

import random
import tarfile
import uuid
from pathlib import Path

import pytest

from fetcher.settings import Settings
from jobs_contract import JobStatus
from tests.fetcher.helpers import (
    Analyzer,
    fetcher_settings,
    gzip_bytes,
    member,
    raw_header,
    raw_member,
    repeated_gzip,
    running_fetcher,
    tar_bytes,
)
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.nats

TOP = "octo-evil-abc1234"
SHA = "ab" * 20


async def still_serving(fake_github: FakeGitHub, jobs: Analyzer) -> None:
    fake_github.add_repo("octo", "fine", {"ok.py": "ok = True\n"})
    record = await jobs.wait(await jobs.submit("octo", "fine"))
    assert record.status is JobStatus.READY, record.error


async def test_unsafe_names_links_devices_and_fifos_are_skipped_and_nothing_is_written(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / f"escape-{uuid.uuid4().hex}"
    archive = tar_bytes(
        [
            (member(TOP, tarfile.DIRTYPE), None),
            (member(f"{TOP}/good.py"), b"good = 1\n"),
            (member("../evil.py"), b"import os\n"),
            (member(f"{outside}/abs.py"), b"import os\n"),
            (member(f"{TOP}/../../{outside.name}.py"), b"import os\n"),
            (member(f"{TOP}/link.py", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
            (member(f"{TOP}/up.py", tarfile.SYMTYPE, linkname="../../../../etc/passwd"), None),
            (member(f"{TOP}/hard.py", tarfile.LNKTYPE, linkname="/etc/shadow"), None),
            (member(f"{TOP}/tty", tarfile.CHRTYPE), None),
            (member(f"{TOP}/disk", tarfile.BLKTYPE), None),
            (member(f"{TOP}/pipe.py", tarfile.FIFOTYPE), None),
            (member(f"{TOP}/pkg/also_good.py"), b"also = 2\n"),
        ],
        pax_comment=SHA,
    )
    fake_github.add_archive("octo", "evil", gzip_bytes(archive), sha=SHA)

    record = await jobs.wait(await jobs.submit("octo", "evil"))

    assert record.status is JobStatus.READY, record.error
    assert record.commit_sha == SHA
    snapshot = await jobs.snapshot(record.snapshot or "")
    assert snapshot.files == {"good.py": b"good = 1\n", "pkg/also_good.py": b"also = 2\n"}
    assert snapshot.skipped == {
        "../evil.py": "path leaves the archive ('..')",
        f"{outside}/abs.py": "absolute path",
        f"{TOP}/../../{outside.name}.py": "path leaves the archive ('..')",
        "link.py": "symbolic link, not followed",
        "up.py": "symbolic link, not followed",
        "hard.py": "hard link, not followed",
        "tty": "character device",
        "disk": "block device",
        "pipe.py": "FIFO",
    }
    assert not outside.exists()
    assert not (tmp_path.parent / f"{outside.name}.py").exists()
    assert not Path("evil.py").exists()


async def test_a_gzip_bomb_fails_on_the_unpacked_limit(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    # 1 GiB of zeros inside one member, about 1 MB on the wire.
    bomb = repeated_gzip(b"\0" * (1 << 20), 1024, head=raw_header(f"{TOP}/bomb.bin", 1 << 30))
    assert len(bomb) < 2 << 20
    fake_github.add_archive("octo", "bomb", bomb)

    settings = fetcher_settings(nats_url, fake_github.api_url, fetcher_max_unpacked_bytes=64 << 20)
    async with running_fetcher(settings):
        record = await jobs.wait(await jobs.submit("octo", "bomb"))
        assert record.status is JobStatus.FAILED
        assert "FETCHER_MAX_UNPACKED_BYTES=67108864" in (record.error or "")
        await still_serving(fake_github, jobs)


@pytest.mark.slow
async def test_a_million_tiny_files_fail_on_the_member_limit(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings
) -> None:
    # 1,024 different 1-byte files repeated 977 times: 1,000,448 members, about 1 MB gzipped.
    block = b"".join(raw_member(f"{TOP}/d/{i:04d}.txt", b"x") for i in range(1024))
    archive = repeated_gzip(block, 977)
    fake_github.add_archive("octo", "many", archive)

    record = await jobs.wait(await jobs.submit("octo", "many"), timeout=120)

    assert record.status is JobStatus.FAILED
    assert f"FETCHER_MAX_MEMBERS={fetcher.fetcher_max_members}" in (record.error or "")
    await still_serving(fake_github, jobs)


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        pytest.param(
            gzip_bytes(tar_bytes([(member(f"{TOP}/a.py"), b"a = 1\n" * 5000)]))[:-300],
            "truncated",
            id="truncated-gzip",
        ),
        pytest.param(b"<html>not a tarball</html>", "not a valid .tar.gz", id="not-gzip"),
        pytest.param(gzip_bytes(b"\x07" * 4096), "not a valid tar file", id="gzip-of-garbage"),
        pytest.param(
            gzip_bytes(raw_member(f"{TOP}/a.py", b"a = 1\n") + raw_header(f"{TOP}/b.py", 10)[:200]),
            "the archive is truncated: the tar stream ends inside a header",
            id="tar-cut-inside-a-header",
        ),
        pytest.param(
            gzip_bytes(raw_member(f"{TOP}/a.py", b"a = 1\n")),
            "the archive is truncated: the tar stream ends without its end-of-archive marker",
            id="tar-cut-between-members",
        ),
    ],
)
async def test_broken_archives_fail_with_a_reason(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings, archive: bytes, reason: str
) -> None:
    fake_github.add_archive("octo", "broken", archive)

    record = await jobs.wait(await jobs.submit("octo", "broken"))

    assert record.status is JobStatus.FAILED
    assert reason in (record.error or ""), record.error
    assert len(jobs.events_for(record.job_id, "failed")) == 1
    await still_serving(fake_github, jobs)


@pytest.mark.parametrize(
    ("limit", "value", "expected"),
    [
        (
            "fetcher_max_file_bytes",
            1000,
            "pkg/big.py is 2000 bytes: over the limit FETCHER_MAX_FILE_BYTES=1000",
        ),
        ("fetcher_max_members", 3, "FETCHER_MAX_MEMBERS=3"),
        ("fetcher_max_download_bytes", 200, "FETCHER_MAX_DOWNLOAD_BYTES=200"),
        ("fetcher_max_unpacked_bytes", 4096, "FETCHER_MAX_UNPACKED_BYTES=4096"),
    ],
)
async def test_each_limit_fails_the_job_naming_its_setting(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer, limit: str, value: int, expected: str
) -> None:
    fake_github.add_repo("octo", "limits", {"a.py": "a = 1\n", "b.py": "b = 2\n", "pkg/big.py": "#" * 2000})

    async with running_fetcher(fetcher_settings(nats_url, fake_github.api_url, **{limit: value})):
        record = await jobs.wait(await jobs.submit("octo", "limits"))
        assert record.status is JobStatus.FAILED
        assert expected in (record.error or ""), record.error


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["long-name", "pax"])
async def test_a_header_announcing_a_gigabyte_fails_without_reading_it(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: Settings, kind: bytes
) -> None:
    header = member("././@LongLink", kind)
    header.size = 1 << 30
    # About 1 MB on the wire (random bytes do not compress); tarfile alone read it as a name.
    body = (
        raw_member(f"{TOP}/a.py", b"a = 1\n") + header.tobuf(tarfile.GNU_FORMAT) + random.randbytes(1 << 20)
    )
    fake_github.add_archive("octo", "longname", gzip_bytes(body))

    record = await jobs.wait(await jobs.submit("octo", "longname"))

    assert record.status is JobStatus.FAILED
    assert record.error == (
        "the archive has a long-name or pax header of 1073741824 bytes; at most 65536 are read"
    )
    await still_serving(fake_github, jobs)
