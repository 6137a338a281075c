"""The model catalogue against a real HTTP server on loopback: download, hash, size, deadline, resume.

The server serves files under HuggingFace's resolve paths; catalogue entries for them are added
for the test with their SHA-256 computed here (the bundled GGUF for the end-to-end cases, a small
GGUF-headed blob for the rest).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from litestar.testing import AsyncTestClient

from model_host import catalogue
from model_host.app import create_app
from model_host.catalogue import CatalogueEntry, CatalogueError, pull, pull_or_fall_back
from model_host.download import MAX_REDIRECTS, LoggedProgress, PlainProgress
from model_host.engines import LlamaCppEngine
from model_host.settings import Settings, bundled_model_path
from tests.support.asgi import run_lifespan
from tests.support.ports import free_port
from tests.support.servers import service_process, serving

BLOB = b"GGUF" + bytes(range(256)) * 12_000  # about 3 MB
REPO = "tests/tiny-GGUF"


class FileServer:
    """Serves `files` by path, with Range requests; can cut, ignore Range, drip, or leave out the length."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None  # the next answer stops after this many bytes, then no more cuts
        self.ignore_range = False
        self.send_length = True
        self.drip_s: float | None = None
        self.first_piece: int | None = None  # the body's first bytes go alone, a moment before the rest

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        headers = dict(scope["headers"])
        requested = headers[b"range"].decode() if b"range" in headers else None
        self.requests.append((scope["path"], requested))
        if scope["path"] in self.redirects:
            location = self.redirects[scope["path"]].encode()
            await send({"type": "http.response.start", "status": 302, "headers": [(b"location", location)]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = self.files.get(scope["path"])
        if body is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        status, start, answer_headers = 200, 0, []
        if requested is not None and not self.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                await send({"type": "http.response.start", "status": 416, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            status = 206
            answer_headers.append((b"content-range", f"bytes {start}-{len(body) - 1}/{len(body)}".encode()))
        payload = body[start:]
        if self.send_length:
            answer_headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": answer_headers})
        if self.cut_after is not None:
            cut, self.cut_after = self.cut_after, None
            await send({"type": "http.response.body", "body": payload[:cut], "more_body": True})
            return  # the connection closes with the body unfinished
        if self.first_piece is not None:
            await send({"type": "http.response.body", "body": payload[: self.first_piece], "more_body": True})
            await asyncio.sleep(0.2)
            payload = payload[self.first_piece :]
        piece = 64 * 1024 if self.drip_s is not None else len(payload)
        for offset in range(0, len(payload), piece):
            await send(
                {"type": "http.response.body", "body": payload[offset : offset + piece], "more_body": True}
            )
            if self.drip_s is not None:
                await asyncio.sleep(self.drip_s)
        await send({"type": "http.response.body", "body": b""})


def resolve_path(entry: CatalogueEntry) -> str:
    return f"/{entry.repo}/resolve/main/{entry.file}"


def add_entry(monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, **overrides: Any) -> CatalogueEntry:
    fields: dict[str, Any] = {
        "name": name,
        "description": "test model",
        "repo": REPO,
        "file": f"{name}.gguf",
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
        **overrides,
    }
    entry = CatalogueEntry(**fields)
    monkeypatch.setitem(catalogue.CATALOGUE, name, entry)
    return entry


@pytest.fixture
async def blob_server(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FileServer, str, CatalogueEntry]]:
    entry = add_entry(monkeypatch, "tiny", BLOB)
    server = FileServer({resolve_path(entry): BLOB})
    async with serving(server) as url:
        yield server, url, entry


async def pull_in_thread(name: str, cache_dir: Path, url: str, deadline_s: float = 60.0) -> tuple[Path, str]:
    """`pull` off the event loop (the server runs on it); its path and its progress lines."""
    out = io.StringIO()
    path = await asyncio.to_thread(
        pull, name, cache_dir, hub_url=url, deadline_s=deadline_s, progress=PlainProgress(out)
    )
    return path, out.getvalue()


async def test_the_service_reports_a_download_in_its_log_lines(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="model_host.download")
    _server, url, _entry = blob_server
    await asyncio.to_thread(pull, "tiny", tmp_path, hub_url=url, deadline_s=60.0, progress=LoggedProgress())
    lines = [r.getMessage() for r in caplog.records if r.name == "model_host.download"]
    assert lines[0] == "downloading tiny.gguf: 0% (0.0 of 3.1 MB)"
    assert lines[-1] == "downloading tiny.gguf: 100% (3.1 of 3.1 MB)"


async def pull_fails(name: str, cache_dir: Path, url: str, deadline_s: float = 60.0) -> str:
    with pytest.raises(CatalogueError) as failure:
        await pull_in_thread(name, cache_dir, url, deadline_s)
    return str(failure.value)


async def test_a_model_is_downloaded_verified_and_never_downloaded_again(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, _entry = blob_server
    path, progress = await pull_in_thread("tiny", tmp_path, url)
    assert path == tmp_path / "tiny.gguf"
    assert path.read_bytes() == BLOB
    assert server.requests == [(f"/{REPO}/resolve/main/tiny.gguf", None)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gguf"]  # no .lock left
    lines = progress.splitlines()
    assert lines[0] == "downloading tiny.gguf: 0% (0.0 of 3.1 MB)"
    assert lines[-1] == "downloading tiny.gguf: 100% (3.1 of 3.1 MB)"
    again, progress = await pull_in_thread("tiny", tmp_path, url)
    assert again == path
    assert progress == ""
    assert len(server.requests) == 1, "a verified file is never downloaded again"


async def test_redirects_are_followed_as_huggingface_sends_them_to_its_cdn(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, entry = blob_server
    server.files = {"/cdn/blob": BLOB}
    server.redirects = {resolve_path(entry): f"{url}/cdn/blob"}
    path, _ = await pull_in_thread("tiny", tmp_path, url)
    assert path.read_bytes() == BLOB


async def test_a_body_whose_first_piece_is_shorter_than_the_magic_is_a_gguf_file(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, _ = blob_server
    server.first_piece = 2  # b"GG", then the rest
    path, _ = await pull_in_thread("tiny", tmp_path, url)
    assert path.read_bytes() == BLOB


async def test_a_first_piece_that_is_not_the_magic_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    content = b"GGML" + bytes(100)
    entry = add_entry(monkeypatch, "tiny", content)
    server = FileServer({resolve_path(entry): content})
    server.first_piece = 2
    async with serving(server) as url:
        message = await pull_fails("tiny", tmp_path, url)
    assert "is not a GGUF file (it starts with b'GGML')" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "target",
    ["http://example.com/cdn/blob", "ftp://127.0.0.1/cdn/blob", "file://example.com/etc/passwd"],
    ids=["http-elsewhere", "ftp", "file"],
)
async def test_a_redirect_to_plain_http_elsewhere_or_another_scheme_is_refused(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path, target: str
) -> None:
    server, url, entry = blob_server
    server.redirects = {resolve_path(entry): target}
    message = await pull_fails("tiny", tmp_path, url)
    assert (
        f"refused to fetch {target}: only https URLs are downloaded (http only from a loopback host)"
        in message
    )
    assert len(server.requests) == 1  # nothing was asked of the target
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_a_redirect_loop_stops_after_a_few_hops(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, entry = blob_server
    server.redirects = {resolve_path(entry): f"{url}/hop", "/hop": f"{url}{resolve_path(entry)}"}
    message = await pull_fails("tiny", tmp_path, url)
    assert message.endswith(f"more than {MAX_REDIRECTS} redirects")
    assert len(server.requests) == MAX_REDIRECTS + 1


async def test_two_pulls_at_once_download_once_and_leave_no_lock(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, _ = blob_server
    server.drip_s = 0.01  # long enough that the second pull waits on the lock
    (first, _), (second, _) = await asyncio.gather(
        pull_in_thread("tiny", tmp_path, url), pull_in_thread("tiny", tmp_path, url)
    )
    assert first == second == tmp_path / "tiny.gguf"
    assert first.read_bytes() == BLOB
    assert len(server.requests) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gguf"]


async def test_a_cut_download_resumes_with_a_range_request(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, entry = blob_server
    server.cut_after = 1_000_000
    message = await pull_fails("tiny", tmp_path, url)
    assert "tiny.gguf" in message
    part = tmp_path / "tiny.gguf.part"
    assert 0 < part.stat().st_size <= 1_000_000
    kept = part.stat().st_size
    assert not (tmp_path / "tiny.gguf").exists(), "nothing unverified under the final name"
    path, progress = await pull_in_thread("tiny", tmp_path, url)
    assert path.read_bytes() == BLOB
    assert server.requests[-1] == (resolve_path(entry), f"bytes={kept}-")
    assert progress.splitlines()[0].startswith(f"downloading tiny.gguf: {kept * 10 // len(BLOB) * 10}%")
    assert not part.exists()


async def test_a_server_that_ignores_range_sends_it_all_again_and_it_still_verifies(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, _ = blob_server
    server.cut_after = 500_000
    await pull_fails("tiny", tmp_path, url)
    server.ignore_range = True
    path, _ = await pull_in_thread("tiny", tmp_path, url)
    assert path.read_bytes() == BLOB


async def test_a_refused_resume_deletes_the_partial_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = add_entry(monkeypatch, "tiny", BLOB, size=len(BLOB) + 10)  # the server's file is shorter
    (tmp_path / "tiny.gguf.part").write_bytes(BLOB)
    async with serving(FileServer({resolve_path(entry): BLOB})) as url:
        message = await pull_fails("tiny", tmp_path, url)
    assert f"refused the resume from byte {len(BLOB)}" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "chunked"])
async def test_a_body_larger_than_pinned_is_refused_and_nothing_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, send_length: bool
) -> None:
    entry = add_entry(monkeypatch, "tiny", BLOB, size=len(BLOB) - 1)
    server = FileServer({resolve_path(entry): BLOB})
    server.send_length = send_length
    async with serving(server) as url:
        message = await pull_fails("tiny", tmp_path, url)
    assert f" {len(BLOB) - 1} bytes, the size the catalogue pins" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "overrides", "expected"),
    [
        (BLOB, {"sha256": "0" * 64}, "SHA-256 mismatch: expected " + "0" * 64),
        (b"<html>log in</html>", {}, "is not a GGUF file"),
    ],
    ids=["bad-hash", "not-gguf"],
)
async def test_content_that_does_not_verify_is_deleted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: bytes, overrides: dict[str, Any], expected: str
) -> None:
    entry = add_entry(monkeypatch, "tiny", content, **overrides)
    async with serving(FileServer({resolve_path(entry): content})) as url:
        message = await pull_fails("tiny", tmp_path, url)
    assert expected in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_an_http_error_is_named(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, _ = blob_server
    server.files = {}
    assert "answered HTTP 404" in await pull_fails("tiny", tmp_path, url)


async def test_a_slow_server_is_bounded_by_the_whole_download_deadline(
    blob_server: tuple[FileServer, str, CatalogueEntry], tmp_path: Path
) -> None:
    server, url, _ = blob_server
    server.drip_s = 0.05  # 64 KiB at a time: every read is quick, the whole would take ~2.5 s
    message = await pull_fails("tiny", tmp_path, url, deadline_s=0.5)
    assert "deadline passed" in message
    assert "run again to resume" in message
    assert not (tmp_path / "tiny.gguf").exists()


async def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        CatalogueError, match=r"no model 'gpt-5' in the catalogue; known: smollm2-135m, qwen3-0\.6b"
    ):
        pull("gpt-5", tmp_path, hub_url="http://127.0.0.1:1", deadline_s=1)
    with pytest.raises(pydantic.ValidationError, match=r"known: smollm2-135m, qwen3-0\.6b"):
        Settings(_env_file=None, model="gpt-5")


def test_qwen3_is_pinned_at_the_resolve_url_and_hash_the_issue_names() -> None:
    qwen = catalogue.CATALOGUE["qwen3-0.6b"]
    assert qwen.url("https://huggingface.co") == (
        "https://huggingface.co/bartowski/Qwen_Qwen3-0.6B-GGUF/resolve/main/Qwen_Qwen3-0.6B-Q4_K_M.gguf"
    )
    assert qwen.sha256 == "9acfc1e001311f34b4252001b626f2e466d592a42065f66571bff3790d4e1b14"


def test_offline_the_bundled_model_is_served_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, model="qwen3-0.6b", model_cache_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="model_host"):
        got = pull_or_fall_back(
            "qwen3-0.6b", tmp_path, hub_url=f"http://127.0.0.1:{free_port()}", deadline_s=10
        )
    assert got is None
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "MODEL=qwen3-0.6b")
    ]
    assert caplog.records[0].getMessage().endswith("; serving the bundled smollm2-135m instead")
    assert settings.resolved_model_path() == bundled_model_path()


def test_a_model_cache_it_cannot_write_falls_back_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As in the image whose build was offline: /models is there but not the service user's. A
    # regular file in the way fails the same way for root too (tests may run as root).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with caplog.at_level(logging.INFO, logger="model_host"):
        got = pull_or_fall_back(
            "qwen3-0.6b", blocker / "models", hub_url=f"http://127.0.0.1:{free_port()}", deadline_s=10
        )
    assert got is None
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        f"MODEL=qwen3-0.6b: cannot write the model cache {blocker / 'models'} (MODEL_CACHE_DIR): "
    )
    assert record.getMessage().endswith("; serving the bundled smollm2-135m instead")


async def test_the_pull_command_prints_the_path_or_one_line(
    blob_server: tuple[FileServer, str, CatalogueEntry],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, url, _ = blob_server
    monkeypatch.setenv("MODEL_HUB_URL", url)
    code = await asyncio.to_thread(catalogue.main, ["pull", "tiny", "--cache-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == f"{tmp_path / 'tiny.gguf'}\n"
    assert "100%" in err  # the progress went to stderr
    assert catalogue.main(["list", "--cache-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert f"tiny           test model  [{tmp_path / 'tiny.gguf'}]" in listed
    assert "qwen3-0.6b" in listed
    assert "not downloaded" in listed
    server.files = {}
    assert (
        await asyncio.to_thread(catalogue.main, ["pull", "tiny", "--cache-dir", str(tmp_path / "new")]) == 1
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("model_host.catalogue: MODEL=tiny: ")
    assert "HTTP 404" in err


@pytest.mark.model
async def test_model_host_serves_a_downloaded_catalogue_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundled = bundled_model_path()
    assert bundled is not None
    content = bundled.read_bytes()
    entry = add_entry(monkeypatch, "smol-copy", content, file="smol-copy.Q4_1.gguf")
    async with serving(FileServer({resolve_path(entry): content})) as url:
        path, _ = await pull_in_thread("smol-copy", tmp_path, url)
    settings = Settings(_env_file=None, model="smol-copy", model_cache_dir=tmp_path, model_context_size=256)
    assert settings.resolved_model_path() == path
    async with AsyncTestClient(create_app(settings)) as client:
        async with asyncio.timeout(120):
            while (health := await client.get("/health")).status_code != 200:
                await asyncio.sleep(0.05)
    assert health.json() == {"status": "ok", "model": "smol-copy.Q4_1", "engine": "llama_cpp"}


@pytest.mark.model
@pytest.mark.slow
async def test_model_host_offline_falls_back_to_the_bundled_model(tmp_path: Path, service_logs: Path) -> None:
    env = {
        "MODEL": "qwen3-0.6b",
        "MODEL_CACHE_DIR": str(tmp_path),
        "MODEL_HUB_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_CONTEXT_SIZE": "256",
        "MODEL_THREADS": "1",
    }
    with service_process("model_host", env, service_logs, port_variable="MODEL_HOST_PORT") as service:
        async with httpx.AsyncClient(base_url=service.url) as http:
            health = (await http.get("/health")).json()
        assert service.stop() == 0
    assert health["model"] == "SmolLM2-135M-Instruct.Q4_1"
    warnings = [line for line in service.log().splitlines() if "serving the bundled" in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert "MODEL=qwen3-0.6b" in warnings[0]
    assert "downloading" not in service.log()


QWEN3_TEMPLATE_TAIL = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


@pytest.mark.model
def test_thinking_templates_are_told_not_to_think() -> None:
    # Qwen3's template, reduced to its turns and its enable_thinking switch.
    settings = Settings(_env_file=None, model_context_size=128, model_chat_template=QWEN3_TEMPLATE_TAIL)
    engine = LlamaCppEngine(settings.resolved_model_path(), settings)
    prompt = engine.render_chat([{"role": "user", "content": "hi"}]).text
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
