"""The contract's limits: one rule per field, applied by msgspec when either side decodes."""

from __future__ import annotations

import msgspec
import pytest

from jobs_contract import (
    JobStatus,
    Snapshot,
    decode_fetch_request,
    decode_job_record,
    decode_snapshot,
    encode_json,
    encode_snapshot,
    is_job_id,
)

GOOD = {
    "job_id": "0f3a-b_9",
    "owner": "octo-cat",
    "repo": "hello.world_2",
    "ref": "release/1.x",
    "requested_at": 1.0,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("owner", "a" * 39),
        ("repo", "r" * 100),
        ("repo", "..."),
        ("ref", "x" * 255),
        ("ref", "v1.2.3+build"),
        ("job_id", "j" * 128),
    ],
)
def test_what_github_accepts_is_accepted(field: str, value: str) -> None:
    request = decode_fetch_request(msgspec.json.encode({**GOOD, field: value}))
    assert getattr(request, field) == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job_id", ""),
        ("job_id", "j" * 129),
        ("job_id", "a.b"),
        ("job_id", "abc\n"),
        ("owner", "a" * 40),
        ("owner", "-octo"),
        ("owner", "octo--cat"),
        ("owner", "octo_cat"),
        ("repo", "r" * 101),
        ("repo", ".."),
        ("repo", "."),
        ("repo", "a/b"),
        ("ref", ""),
        ("ref", "x" * 256),
        ("ref", "main\n"),
        ("ref", "a b"),
        ("ref", "a\x00b"),
        ("ref", "a..b~1"),
    ],
)
def test_what_github_refuses_fails_to_decode_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        decode_fetch_request(msgspec.json.encode({**GOOD, field: value}))


def test_job_records_are_checked_by_the_same_rules() -> None:
    record = {
        "job_id": "j1",
        "status": "queued",
        "owner": "octo",
        "repo": "demo",
        "created_at": 1.0,
        "updated_at": 1.0,
    }
    decoded = decode_job_record(msgspec.json.encode(record))
    assert decoded.status is JobStatus.QUEUED
    assert decode_job_record(encode_json(decoded)) == decoded
    with pytest.raises(msgspec.ValidationError, match=r"\$\.owner"):
        decode_job_record(msgspec.json.encode({**record, "owner": "../etc"}))


def test_is_job_id_is_the_decoders_rule() -> None:
    assert is_job_id("a" * 128)
    assert not is_job_id("a" * 129)
    assert not is_job_id("abc\n")
    assert not is_job_id("a.b")


def test_a_snapshot_stored_before_configs_existed_still_decodes() -> None:
    # What an older fetcher wrote: the same map without the `configs` key.
    old = msgspec.msgpack.encode(
        {"owner": "o", "repo": "r", "commit_sha": "c" * 40, "files": {"a.py": b"a = 1\n"}, "skipped": {}}
    )

    snapshot = decode_snapshot(old)

    assert snapshot.files == {"a.py": b"a = 1\n"}
    assert snapshot.configs == {}


def test_a_snapshot_keeps_its_configs_apart_from_its_files() -> None:
    snapshot = Snapshot(
        owner="o",
        repo="r",
        commit_sha="c" * 40,
        files={"a.py": b""},
        configs={"pyproject.toml": b"[tool.ruff]\n"},
    )
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot
