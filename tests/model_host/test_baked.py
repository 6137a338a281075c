"""What an image's build bakes into /models (`catalogue bake`), and what model_host does at start.

The start decision is a function of the settings and the build's record (`plan_start`); these
tests take it case by case, then run `python -m model_host` as the image does: MODEL_DOWNLOAD=never
after an offline build, against a model hub that would answer, which must never be asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from model_host import catalogue
from model_host.baked import (
    BAKED_FILE,
    MAX_RECORD_BYTES,
    BakedModel,
    BakedRecordError,
    StartPlan,
    bake,
    plan_start,
    read_record,
    write_record,
)
from model_host.catalogue import BUNDLED_MODEL, CATALOGUE, CatalogueError
from model_host.settings import Download, Settings, bundled_model_path
from tests.model_host.test_catalogue import FileServer, resolve_path
from tests.support.servers import service_process, serving

QWEN = "qwen3-0.6b"
OFFLINE_HUB = "http://127.0.0.1:9"  # nothing listens on the discard port: refused at once
OFFLINE_ERROR = "https://huggingface.co/...: ConnectError: [Errno -3] Temporary failure in name resolution"


def settings(cache: Path, download: Download = "never", model_path: Path | None = None) -> Settings:
    return Settings(
        _env_file=None, model=QWEN, model_cache_dir=cache, model_download=download, model_path=model_path
    )


def test_an_offline_build_is_served_as_the_bundled_model_and_says_why_once(tmp_path: Path) -> None:
    baked = BakedModel(model=QWEN, error=OFFLINE_ERROR)
    plan = plan_start(settings(tmp_path), baked)
    assert plan.download is False
    assert plan.level == logging.WARNING
    assert plan.notice == (
        f"offline: serving the bundled model {BUNDLED_MODEL}: the image's build could not download "
        f"{QWEN} ({OFFLINE_ERROR}); to serve {QWEN}, rebuild the image where it can reach the model hub, "
        "or set MODEL_DOWNLOAD=missing"
    )
    assert settings(tmp_path).resolved_model_path() == bundled_model_path()


@pytest.mark.parametrize(
    "baked",
    [None, BakedModel(model="smollm2-135m"), BakedModel(model="other", error="offline")],
    ids=["no-record", "bundled-baked", "another-model"],
)
def test_never_without_the_file_names_what_is_missing_whatever_the_record(
    tmp_path: Path, baked: BakedModel | None
) -> None:
    # The image run with another MODEL than it was built with, or a cache no build wrote.
    plan = plan_start(settings(tmp_path), baked)
    assert (plan.download, plan.level) == (False, logging.WARNING)
    assert plan.notice == (
        f"offline: serving the bundled model {BUNDLED_MODEL}: {QWEN} is not in MODEL_CACHE_DIR {tmp_path} "
        f"and MODEL_DOWNLOAD=never; to serve {QWEN}, run `python -m model_host.catalogue pull {QWEN}`, "
        "or set MODEL_DOWNLOAD=missing"
    )


def test_missing_downloads_first_and_says_nothing_yet(tmp_path: Path) -> None:
    # pull_or_fall_back logs the download, or the one line on failure.
    assert plan_start(settings(tmp_path, "missing"), None) == StartPlan(download=True)
    baked = BakedModel(model=QWEN, error=OFFLINE_ERROR)
    assert plan_start(settings(tmp_path, "missing"), baked) == StartPlan(download=True)


@pytest.mark.parametrize("download", ["never", "missing"])
def test_a_cached_model_an_explicit_file_or_the_bundled_model_need_nothing(
    tmp_path: Path, download: Download
) -> None:
    baked = BakedModel(model=QWEN, error=OFFLINE_ERROR)
    (tmp_path / CATALOGUE[QWEN].file).write_bytes(b"GGUF")
    assert plan_start(settings(tmp_path, download), baked) == StartPlan()
    empty = tmp_path / "empty"
    assert plan_start(settings(empty, download, model_path=tmp_path / "x.gguf"), baked) == StartPlan()
    bundled = Settings(_env_file=None, model=BUNDLED_MODEL, model_cache_dir=empty, model_download=download)
    assert plan_start(bundled, baked) == StartPlan()


def test_the_download_setting_is_read_from_the_environment_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODEL_DOWNLOAD", "never")
    assert Settings(_env_file=None).model_download == "never"
    assert Settings(_env_file=None, model_download="missing").model_download == "missing"
    monkeypatch.setenv("MODEL_DOWNLOAD", "always")
    with pytest.raises(ValueError, match=r"model_download\s+Input should be 'never' or 'missing'"):
        Settings(_env_file=None)


def test_a_record_is_written_and_read_back(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    record = BakedModel(model=QWEN, file=CATALOGUE[QWEN].file)
    path = write_record(tmp_path / "models", record)
    assert path == tmp_path / "models" / BAKED_FILE
    assert json.loads(path.read_text()) == {"model": QWEN, "file": CATALOGUE[QWEN].file, "error": None}
    assert read_record(tmp_path / "models") == record


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not a build's record"),
        (b'{"model": 5}', "not a build's record"),
        (b'{"model": "x", "extra": 1}', "not a build's record"),
        (b"[]", "not a build's record"),
        (b'{"model": "' + b"x" * MAX_RECORD_BYTES + b'"}', f"larger than {MAX_RECORD_BYTES} bytes"),
    ],
    ids=["malformed", "wrong-type", "unknown-field", "not-an-object", "huge"],
)
def test_a_record_that_is_not_one_is_refused_with_its_path(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    (tmp_path / BAKED_FILE).write_bytes(content)
    with pytest.raises(BakedRecordError) as refused:
        read_record(tmp_path)
    assert str(refused.value).startswith(f"{tmp_path / BAKED_FILE}: {reason}")


def test_a_record_that_cannot_be_read_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / BAKED_FILE).mkdir()  # a folder in its place: unreadable as a file, for root too
    with pytest.raises(BakedRecordError, match=r"baked\.json: cannot be read \(Is a directory\)"):
        read_record(tmp_path)


def test_an_offline_bake_records_why_and_the_build_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_HUB_URL", OFFLINE_HUB)
    assert catalogue.main(["bake", QWEN, "--cache-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"model_host.catalogue: offline: MODEL={QWEN}: {OFFLINE_HUB}/")
    assert err.endswith(
        f"; the image will serve the bundled {BUNDLED_MODEL} (recorded in {tmp_path / BAKED_FILE})\n"
    )
    record = read_record(tmp_path)
    assert record is not None
    assert (record.model, record.file) == (QWEN, None)
    assert record.error is not None
    assert record.error.startswith(f"{OFFLINE_HUB}/bartowski/")
    assert "ConnectError" in record.error
    assert sorted(p.name for p in tmp_path.iterdir()) == [BAKED_FILE]  # no .part, no .lock


def test_baking_the_bundled_model_records_it_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert catalogue.main(["bake", BUNDLED_MODEL, "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{bundled_model_path()}\n"
    assert read_record(tmp_path) == BakedModel(model=BUNDLED_MODEL)


def test_an_unknown_model_fails_the_build_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert catalogue.main(["bake", "qwen3-06b", "--cache-dir", str(tmp_path / "models")]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        "model_host.catalogue: no model 'qwen3-06b' in the catalogue; known: smollm2-135m, qwen3-0.6b\n",
    )
    assert not (tmp_path / "models").exists()
    with pytest.raises(CatalogueError):
        bake("qwen3-06b", tmp_path, hub_url=OFFLINE_HUB, deadline_s=1)


def test_a_record_that_cannot_be_written_fails_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert catalogue.main(["bake", BUNDLED_MODEL, "--cache-dir", str(blocker)]) == 1
    assert capsys.readouterr().err.startswith(f"model_host.catalogue: cannot write {blocker / BAKED_FILE}: ")


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("download", ["never", "missing"])
async def test_the_image_start_after_an_offline_build_asks_no_hub(
    tmp_path: Path, service_logs: Path, download: Download
) -> None:
    # The build ran offline; at run time a hub answers (with a file that is not the pinned one).
    record = await asyncio.to_thread(bake, QWEN, tmp_path, hub_url=OFFLINE_HUB, deadline_s=10)
    assert record.error is not None
    hub = FileServer({resolve_path(CATALOGUE[QWEN]): b"GGUF" + bytes(1000)})
    async with serving(hub) as hub_url:
        env = {
            "MODEL": QWEN,
            "MODEL_CACHE_DIR": str(tmp_path),
            "MODEL_DOWNLOAD": download,
            "MODEL_HUB_URL": hub_url,
            "MODEL_CONTEXT_SIZE": "256",
            "MODEL_THREADS": "1",
        }

        def run() -> tuple[dict[str, object], str, int]:
            with service_process("model_host", env, service_logs, port_variable="MODEL_HOST_PORT") as service:
                health = httpx.get(f"{service.url}/health", timeout=10).json()
                code = service.stop()
            return health, service.log(), code

        health, log, code = await asyncio.to_thread(run)
    assert code == 0
    assert health["model"] == "SmolLM2-135M-Instruct.Q4_1"
    offline = [line for line in log.splitlines() if "offline: serving the bundled model" in line]
    if download == "never":
        assert hub.requests == [], "nothing is downloaded at run time"
        assert len(offline) == 1, log
        assert "WARNING" in offline[0]
        assert f"the image's build could not download {QWEN}" in offline[0]
        assert "downloading" not in log
        assert "cannot write" not in log
    else:  # asked to: it tries, the hash is wrong, it says so and serves the bundled model
        assert [path for path, _ in hub.requests] == [resolve_path(CATALOGUE[QWEN])]
        assert offline == []
        assert f"ended after 1004 of {CATALOGUE[QWEN].size} bytes" in log, log
