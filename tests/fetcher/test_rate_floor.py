"""The download's floor rate (issue #20): what counts toward it and what does not, in the GitHub
client against the fake GitHub (a real HTTP server on loopback). The fetcher-wide outcome, slots
given up to queued jobs, is in test_slow_downloads.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from fetcher.errors import DownloadTooSlowError
from fetcher.github import GitHubClient, GitHubConfig
from tests.support.fake_github import FakeGitHub, Fault

ARCHIVE = bytes(range(256)) * 4  # 1 KiB; the client does not look inside


def config(fake_github: FakeGitHub, rate: int, window_s: float) -> GitHubConfig:
    return GitHubConfig(
        api_url=fake_github.api_url,
        timeout_s=20.0,
        backoff_s=0.0,
        min_rate_bytes_s=rate,
        min_rate_window_s=window_s,
    )


async def download(github: GitHubClient, repo: str, chunk_pause_s: float = 0.0) -> bytes:
    received = bytearray()

    async def on_chunk(chunk: bytes, announced: int | None) -> None:
        received.extend(chunk)
        await asyncio.sleep(chunk_pause_s)

    await github.download_tarball("octo", repo, "main", on_chunk)
    return bytes(received)


@pytest.mark.alone
async def test_a_stalled_body_fails_after_one_window_not_after_the_http_timeout(
    fake_github: FakeGitHub,
) -> None:
    # Headers, one byte, then a pause far longer than the window (the HTTP read timeout is 20 s).
    fake_github.add_archive("octo", "stalled", ARCHIVE)
    fake_github.trickle("octo", "stalled", size=1, delay=30.0)
    started = time.monotonic()
    async with GitHubClient(config(fake_github, rate=100, window_s=0.5)) as github:
        with pytest.raises(DownloadTooSlowError) as caught:
            await download(github, "stalled")
    took = time.monotonic() - started

    assert str(caught.value) == (
        "the download of octo/stalled at 'main' was slower than FETCHER_MIN_RATE_BYTES_S=100 bytes/s "
        "over FETCHER_MIN_RATE_WINDOW_S=0.5 s (1 bytes in the last window, 1 in all): it gave its "
        "slot up to the jobs waiting (FETCHER_MIN_RATE_BYTES_S=0 waits up to "
        "FETCHER_DOWNLOAD_TIMEOUT_S instead)"
    )
    assert took < 10.0  # generous: the window is 0.5 s, the read timeout 20 s
    # Not retried: a slow server stays slow.
    assert len(fake_github.requests_to("/codeload/octo/stalled/")) == 1


async def test_a_steady_download_above_the_floor_passes_however_long_it_takes(
    fake_github: FakeGitHub,
) -> None:
    # 128 bytes every 0.05 s (about 2.5 kB/s) against a floor of 64 bytes/s over 0.5 s: each
    # window needs one write of the ten it should see (a loaded machine delays some), and the
    # whole archive takes several windows.
    fake_github.add_archive("octo", "steady", ARCHIVE * 4)
    fake_github.trickle("octo", "steady", size=128, delay=0.05)
    async with GitHubClient(config(fake_github, rate=64, window_s=0.5)) as github:
        assert await download(github, "steady") == ARCHIVE * 4


async def test_what_the_caller_does_with_a_chunk_does_not_count(fake_github: FakeGitHub) -> None:
    # The caller takes 0.6 s per chunk (a slow NATS write, say): more than the 0.3 s window, while
    # the server itself sends everything at once. The floor judges GitHub, not us.
    fake_github.add_archive("octo", "fast", ARCHIVE)
    fake_github.trickle("octo", "fast", size=256, delay=0.01)
    async with GitHubClient(config(fake_github, rate=1_000_000, window_s=0.3)) as github:
        assert await download(github, "fast", chunk_pause_s=0.6) == ARCHIVE


async def test_a_rate_limit_wait_longer_than_the_window_does_not_count(fake_github: FakeGitHub) -> None:
    # GitHub asks for a 1 s wait before the archive: the floor starts with the archive's answer.
    fake_github.add_archive("octo", "limited", ARCHIVE)
    fake_github.add_fault(Fault(r"/tarball/", status=429, headers={"Retry-After": "1"}))
    async with GitHubClient(config(fake_github, rate=100, window_s=0.3)) as github:
        assert await download(github, "limited") == ARCHIVE
    assert len(fake_github.requests_to("/tarball/")) == 2


async def test_a_floor_of_zero_waits_for_any_rate(fake_github: FakeGitHub) -> None:
    fake_github.add_archive("octo", "trickle", ARCHIVE[:40])
    fake_github.trickle("octo", "trickle", size=1, delay=0.02)  # 50 bytes/s for 0.8 s
    async with GitHubClient(config(fake_github, rate=0, window_s=0.1)) as github:
        assert await download(github, "trickle") == ARCHIVE[:40]
