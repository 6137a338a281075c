"""GitHub faults, through the whole fetcher: a real nats-server and the fake GitHub scripting them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from jobs_contract import JobStatus
from tests.fetcher.helpers import Analyzer, fetcher_settings, running_fetcher
from tests.support.fake_github import FakeGitHub, Fault

pytestmark = pytest.mark.nats

FILES: dict[str, bytes | str] = {"app.py": "def main():\n    return 0\n"}


async def test_missing_or_private_repository_fails_saying_both(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: object
) -> None:
    record = await jobs.wait(await jobs.submit("octo", "nowhere"))

    assert record.status is JobStatus.FAILED
    assert record.error == (
        "GitHub has no repository octo/nowhere: it does not exist, or it is private "
        "(set GITHUB_TOKEN to a token that can read it)"
    )
    [failed] = jobs.events_for(record.job_id, "failed")
    assert failed.error == record.error


async def test_missing_ref_fails_naming_it(fake_github: FakeGitHub, jobs: Analyzer, fetcher: object) -> None:
    fake_github.add_repo("octo", "demo", FILES)

    record = await jobs.wait(await jobs.submit("octo", "demo", "no-such-branch"))

    assert record.status is JobStatus.FAILED
    assert "octo/demo at 'no-such-branch'" in (record.error or "")


async def test_rate_limit_beyond_the_wait_bound_fails_naming_the_limit_and_the_token(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: object
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    reset = int(time.time()) + 3600
    fake_github.add_fault(
        Fault(
            r"^/repos/octo/demo$",
            status=403,
            headers={
                "X-RateLimit-Limit": "60",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Resource": "core",
            },
            body=b'{"message": "API rate limit exceeded"}',
        )
    )

    record = await jobs.wait(await jobs.submit("octo", "demo"))

    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert "GitHub's rate limit (60 requests an hour for 'core') is reached" in record.error
    assert "FETCHER_RATE_LIMIT_MAX_WAIT_S=5" in record.error
    assert "set GITHUB_TOKEN" in record.error
    assert len(fake_github.requests_to(r"^/repos/octo/demo$")) == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        pytest.param(429, lambda: {"Retry-After": "1"}, id="429-retry-after"),
        pytest.param(
            403,
            lambda: {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 1)},
            id="403-reset-soon",
        ),
    ],
)
async def test_a_rate_limit_that_resets_soon_is_waited_out(
    fake_github: FakeGitHub,
    jobs: Analyzer,
    fetcher: object,
    status: int,
    headers: Callable[[], dict[str, str]],
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    fake_github.add_fault(Fault(r"/tarball/", status=status, headers=headers()))

    record = await jobs.wait(await jobs.submit("octo", "demo"))

    assert record.status is JobStatus.READY, record.error
    assert len(fake_github.requests_to("/tarball/")) == 2


async def test_forbidden_without_rate_limit_headers_fails_at_once(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: object
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    fake_github.add_fault(Fault(r"/tarball/", status=403, body=b'{"message": "Repository access blocked"}'))

    record = await jobs.wait(await jobs.submit("octo", "demo"))

    assert record.status is JobStatus.FAILED
    assert record.error == "GitHub refused access to octo/demo at 'main' (403): Repository access blocked"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault(r"/tarball/", status=502, times=2), id="5xx-twice"),
        pytest.param(Fault(r"/codeload/", drop=True, times=2), id="dropped-twice"),
        pytest.param(Fault(r"^/repos/octo/demo$", drop=True, times=1), id="dropped-repo-call"),
    ],
)
async def test_transient_faults_are_retried(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: object, fault: Fault
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    fake_github.add_fault(fault)

    record = await jobs.wait(await jobs.submit("octo", "demo"))

    assert record.status is JobStatus.READY, record.error
    assert fault.times == 0


async def test_lasting_5xx_fails_after_bounded_retries_and_deliveries(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    fake_github.add_fault(Fault(r"/tarball/", status=503, times=None))
    settings = fetcher_settings(
        nats_url, fake_github.api_url, fetcher_http_retries=1, fetcher_max_deliveries=2
    )

    async with running_fetcher(settings):
        record = await jobs.wait(await jobs.submit("octo", "demo"))

    assert record.status is JobStatus.FAILED
    assert record.error == "GitHub answered 503 for octo/demo at 'main' 2 times (gave up after 2 deliveries)"
    # 2 deliveries x (1 try + 1 retry), and nothing more.
    assert len(fake_github.requests_to("/tarball/")) == 4
    assert len(jobs.events_for(record.job_id, "failed")) == 1


async def test_a_redirect_to_another_host_is_not_followed(
    fake_github: FakeGitHub, jobs: Analyzer, fetcher: object
) -> None:
    fake_github.add_repo("octo", "demo", FILES)
    with FakeGitHub.running() as elsewhere:
        elsewhere.add_repo("octo", "demo", FILES)
        target = f"{elsewhere.api_url}/codeload/octo/demo/legacy.tar.gz/main"
        fake_github.add_fault(Fault(r"/tarball/", redirect_to=target))

        record = await jobs.wait(await jobs.submit("octo", "demo"))

        assert record.status is JobStatus.FAILED
        assert record.error is not None
        assert "redirected octo/demo at 'main' to http://127.0.0.1" in record.error
        assert "not followed" in record.error
        assert elsewhere.requests == []


async def test_the_token_goes_to_the_api_host_and_never_to_the_logs(
    nats_url: str, fake_github: FakeGitHub, jobs: Analyzer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_github.add_repo("octo", "demo", FILES)
    settings = fetcher_settings(nats_url, fake_github.api_url, github_token="ghp_secret")

    async with running_fetcher(settings):
        record = await jobs.wait(await jobs.submit("octo", "demo"))
        failed = await jobs.wait(await jobs.submit("octo", "missing"))

    assert failed.status is JobStatus.FAILED
    assert "job ready" in caplog.text
    assert "ghp_secret" not in caplog.text

    assert record.status is JobStatus.READY, record.error
    assert {r.headers.get("authorization") for r in fake_github.requests} == {"Bearer ghp_secret"}
