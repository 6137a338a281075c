"""Moving from one NATS server to a three-node cluster loses nothing, by the documented path.

What happens without it is shown first: a cluster node started on the single server's store does
not see its streams (in most runs: nats-server now and then restores that node's old store), and
the analyzer's start then creates new, empty ones and says so. The path that keeps the data: the
old server runs on its old store, the cluster on new ones, and `python -m jobs_contract.migrate`
copies every stream (jobs, snapshots, queued requests) into the cluster at three replicas, where
the analyzer reads them.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import nats
import pytest

from analyzer.snapshots import read_object
from jobs_contract import (
    FETCH_STREAM,
    FETCH_SUBJECT,
    REPOS_BUCKET,
    FetchRequest,
    JobRecord,
    JobStatus,
    Snapshot,
    decode_snapshot,
    encode_json,
    encode_snapshot,
    ensure_jetstream,
    snapshot_key,
)
from jobs_contract.settings import StorageSettings
from tests.support.nats import running_nats_server
from tests.support.nats_cluster import running_nats_cluster, wait_for_jetstream

pytestmark = [pytest.mark.nats, pytest.mark.slow]

SHA = "a" * 40
KEY = snapshot_key("octo", "demo", SHA)
FILES = {"mod.py": b"def double(x):\n    return x * 2\n" * 5000}  # several Object Store chunks


def storage(replicas: int) -> StorageSettings:
    return StorageSettings(_env_file=None, nats_replicas=replicas)


def run_migrate(source: str, target: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "jobs_contract.migrate", "--source", source, "--target", target]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


async def fill_single_server(url: str) -> None:
    """What a single-server stack leaves behind: a ready job, its snapshot, a queued request."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        stores = await ensure_jetstream(js, storage(1))
        await stores.repos.put(
            KEY, encode_snapshot(Snapshot(owner="octo", repo="demo", commit_sha=SHA, files=FILES))
        )
        record = JobRecord(
            job_id="job-ready", status=JobStatus.READY, owner="octo", repo="demo", commit_sha=SHA,
            snapshot=KEY, created_at=1.0, updated_at=1.0,
        )  # fmt: skip
        await stores.kv.put(record.job_id, encode_json(record))
        queued = FetchRequest(job_id="job-queued", owner="octo", repo="other", requested_at=1.0)
        await js.publish(FETCH_SUBJECT, encode_json(queued), headers={"Nats-Msg-Id": "job-queued"})
    finally:
        await client.close()


async def test_a_single_server_moves_to_three_nodes_with_every_job_and_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old_store = tmp_path / "single"
    with running_nats_server(old_store) as single_url:
        await fill_single_server(single_url)

    # Without the copy: node 1 on (a copy of) the old store sees nothing; the analyzer creates anew.
    shutil.copytree(old_store, tmp_path / "cluster-on-old" / "n1")
    with running_nats_cluster(tmp_path / "cluster-on-old") as cluster:
        await wait_for_jetstream(cluster.url, replicas=3)
        client = await nats.connect(cluster.url.split(","))
        try:
            with caplog.at_level(logging.WARNING, logger="jobs_contract.jetstream"):
                stores = await ensure_jetstream(client.jetstream(), storage(3))
            kept = (await client.jetstream().stream_info("KV_jobs")).state.messages
        finally:
            await client.close()
    # What the old data does is nats-server's: usually the cluster does not see it and the new
    # streams stay empty; now and then node 1 restores its old store into a stream (seen: into
    # the new, created one too). What the analyzer promises: whenever it creates the streams on a
    # cluster, it says where an old server's data went and how to copy it.
    created = "created the streams CODEREVIEW_FETCH, KV_jobs, OBJ_repos, empty, with 3 replica(s)"
    if created in caplog.text:
        assert "python -m jobs_contract.migrate --source OLD_URL --target NEW_URL" in caplog.text
    else:
        assert kept == 1, "no stream was created, so the old ones were there"

    # The path: the old server on its store, a new cluster, the analyzer started, the copy.
    with running_nats_server(old_store) as single_url, running_nats_cluster(tmp_path / "cluster") as cluster:
        await wait_for_jetstream(cluster.url, replicas=3)
        client = await nats.connect(cluster.url.split(","))
        try:
            js = client.jetstream()
            await ensure_jetstream(js, storage(3))  # the analyzer started first on the cluster
            copied = run_migrate(single_url, cluster.url)
            assert copied.returncode == 0, copied.stderr
            for stream in (FETCH_STREAM, "KV_jobs", f"OBJ_{REPOS_BUCKET}"):
                assert f"{stream}: " in copied.stderr
                info = await js.stream_info(stream)
                assert info.config.num_replicas == 3
            stores = await ensure_jetstream(js, storage(3))  # a later start changes nothing
            entry = await stores.kv.get("job-ready")
            assert msgspec.json.decode(entry.value or b"", type=JobRecord).status == JobStatus.READY
            data, _ = await read_object(js, stores.repos, REPOS_BUCKET, KEY, timeout_s=10)
            assert decode_snapshot(data).files == FILES
            assert (await js.stream_info(FETCH_STREAM)).state.messages == 1  # the queued request

            # Twice is refused: the target's streams hold messages now.
            again = run_migrate(single_url, cluster.url)
            assert again.returncode == 1
            assert "already holds" in again.stderr
            assert (await js.stream_info(FETCH_STREAM)).state.messages == 1
        finally:
            await client.close()
