"""The shared fixtures work: real nats-server with JetStream, and the fake GitHub over real HTTP."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.request

import nats
import pytest

from tests.support.fake_github import FakeGitHub, Fault


@pytest.mark.nats
async def test_nats_server_has_jetstream(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        kv = await js.create_key_value(bucket="smoke")
        await kv.put("k", b"v")
        entry = await kv.get("k")
        assert entry.value == b"v"
    finally:
        await client.close()


def test_fake_github_serves_a_github_shaped_tarball(fake_github: FakeGitHub) -> None:
    sha = fake_github.add_repo("octo", "hello", {"pkg/mod.py": "def f():\n    return 1\n"})
    with urllib.request.urlopen(f"{fake_github.api_url}/repos/octo/hello") as response:
        assert json.load(response)["default_branch"] == "main"
    # urllib follows the 302 to the codeload-like path, as a client following redirects does.
    with urllib.request.urlopen(f"{fake_github.api_url}/repos/octo/hello/tarball/main") as response:
        assert "/codeload/octo/hello/legacy.tar.gz/main" in response.url
        data = response.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        assert archive.pax_headers["comment"] == sha
        names = archive.getnames()
    assert names == [f"octo-hello-{sha[:7]}", f"octo-hello-{sha[:7]}/pkg/mod.py"]
    assert [r.path for r in fake_github.requests] == [
        "/repos/octo/hello",
        "/repos/octo/hello/tarball/main",
        "/codeload/octo/hello/legacy.tar.gz/main",
    ]


def test_fake_github_scripted_fault_then_recovery(fake_github: FakeGitHub) -> None:
    fake_github.add_repo("octo", "hello", {"a.py": "x = 1\n"})
    fake_github.add_fault(Fault(pattern=r"^/repos/octo/hello$", status=503, times=1))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{fake_github.api_url}/repos/octo/hello")
    assert caught.value.code == 503
    caught.value.close()  # an HTTPError holds the response's socket until closed
    with urllib.request.urlopen(f"{fake_github.api_url}/repos/octo/hello") as response:
        assert response.status == 200


@pytest.mark.nats
async def test_ensure_jetstream_is_idempotent(nats_url: str) -> None:
    from jobs_contract import FETCH_STREAM, ensure_jetstream

    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        first = await ensure_jetstream(js)
        second = await ensure_jetstream(js)  # the other service starting second
        await first.kv.put("job", b"1")
        assert (await second.kv.get("job")).value == b"1"
        info = await js.stream_info(FETCH_STREAM)
        assert info.config.retention == "workqueue"
    finally:
        await client.close()
