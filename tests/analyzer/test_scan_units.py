"""The scan's parts that need no NATS: which files a scan covers, how they are cut, its AsyncAPI
document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.scan.asyncapi import asyncapi_document
from analyzer.scan.cutting import InvalidGlob, compile_paths, cut, select
from analyzer.scan.model import PullScope
from review_contract.scan import SkippedFile

ROOT = Path(__file__).resolve().parents[2]


def test_select_keeps_python_files_matching_the_globs_sorted() -> None:
    files = {"b.py": b"", "a/x.py": b"", "a/y.pyi": b"", "docs/conf.py": b""}
    assert select(files, None) == (["a/x.py", "b.py", "docs/conf.py"], [])
    assert select(files, ["a/**", "*.py"]) == (["a/x.py", "b.py", "docs/conf.py"], [])
    assert select(files, ["a/**"]) == (["a/x.py"], [])
    # The fetcher's own skips are reported when they match.
    chosen, skipped = select(
        files, ["a/**"], snapshot_skipped={"a/big.py": "over 2 MB", "c/big.py": "over 2 MB"}
    )
    assert chosen == ["a/x.py"]
    assert skipped == [SkippedFile(path="a/big.py", reason="over 2 MB")]


def test_select_for_a_pull_request_takes_only_its_files() -> None:
    files = {"a.py": b"", "b.py": b"", "c.py": b""}
    pull = PullScope(
        lines={"b.py": [(1, 3)], "gone.py": [(2, 2)]},
        skipped=[SkippedFile(path="README.md", reason="not Python")],
    )
    chosen, skipped = select(files, None, pull, {"gone.py": "over the limits: 3 MB"})
    assert chosen == ["b.py"]
    assert skipped == [
        SkippedFile(path="README.md", reason="not Python"),
        SkippedFile(path="gone.py", reason="over the limits: 3 MB"),
    ]


def test_cut_bounds_files_and_bytes_and_keeps_the_order() -> None:
    paths = [f"{n}.py" for n in range(7)]
    sizes = dict.fromkeys(paths, 10) | {"3.py": 1_000}
    assert cut(paths, sizes, max_files=2, max_bytes=100) == [
        ["0.py", "1.py"],
        ["2.py"],
        ["3.py"],  # over max_bytes alone: a piece of its own
        ["4.py", "5.py"],
        ["6.py"],
    ]
    assert cut([], {}, max_files=2, max_bytes=100) == []


def test_a_bad_glob_is_refused_naming_it() -> None:
    with pytest.raises(InvalidGlob, match=r"'src/\{a' refused: unclosed alternates"):
        compile_paths(["src/*.py", "src/{a"])


def test_the_asyncapi_document_names_the_queue_and_the_events() -> None:
    document = asyncapi_document()
    assert {channel["address"] for channel in document["channels"].values()} == {
        "codereview.scan.starts",
        "codereview.scan.pieces",
        "codereview.scans.{scan_id}.progress",
        "codereview.scans.{scan_id}.completed",
        "codereview.scans.{scan_id}.failed",
    }
    status = document["components"]["schemas"]["ScanStatus"]
    assert sorted(status["properties"]["status"]["enum"]) == ["completed", "failed", "queued", "running"]


def test_the_committed_asyncapi_document_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "analyzer-asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(asyncapi_document())), (
        "docs/analyzer-asyncapi.json is stale: run "
        "`python -m analyzer.scan.asyncapi docs/analyzer-asyncapi.json`"
    )
