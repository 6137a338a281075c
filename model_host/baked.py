"""What an image's build baked into its model cache, and what model_host does about it at start.

The model_host image decides at build time what it serves: its build runs
`python -m model_host.catalogue bake "$MODEL" --cache-dir /models`, which downloads and verifies
the catalogue model when it can and, either way, writes `baked.json` beside it (`BakedModel`):
the model asked for, the file it got, or why it got none. At start, `plan_start` turns the
settings and that record into what to do: serve what is there, download the model first
(only with MODEL_DOWNLOAD=missing), or serve the bundled model and say once why
("offline: serving the bundled model ..."). Nothing here touches the network.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from model_host.catalogue import BUNDLED_MODEL, CATALOGUE, CatalogueError, cached_path, entry, pull
from model_host.download import Progress
from model_host.settings import Settings

BAKED_FILE = "baked.json"
# The record is a few hundred bytes; anything much larger is not one (and is not read whole).
MAX_RECORD_BYTES = 64 * 1024


class BakedModel(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What `catalogue bake` put in a model cache: `model` (MODEL at build time) and either the
    `file` that serves it (a name in the cache; None for the bundled model) or the `error` that
    kept the build from getting it (one line)."""

    model: str
    file: str | None = None
    error: str | None = None


class BakedRecordError(Exception):
    """The cache's baked.json cannot be read as a BakedModel; the message says which file and why."""


class StartPlan(msgspec.Struct, kw_only=True, frozen=True):
    """What `python -m model_host` does before serving: `download` MODEL first (then
    catalogue.pull_or_fall_back logs any failure), and `notice`, one line to log once at `level`."""

    download: bool = False
    notice: str | None = None
    level: int = logging.INFO


def record_path(cache_dir: Path) -> Path:
    return cache_dir / BAKED_FILE


def write_record(cache_dir: Path, record: BakedModel) -> Path:
    """Write `record` as the cache's baked.json (creating the cache folder); return its path.

    Raises OSError when the folder or the file cannot be written.
    """
    path = record_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.encode(record) + b"\n")
    return path


def read_record(cache_dir: Path) -> BakedModel | None:
    """The cache's baked.json, or None when there is none (a cache no image build wrote).

    Raises BakedRecordError when the file is there but unreadable, larger than MAX_RECORD_BYTES,
    or not a BakedModel.
    """
    path = record_path(cache_dir)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BakedRecordError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_RECORD_BYTES:
        raise BakedRecordError(f"{path}: larger than {MAX_RECORD_BYTES} bytes, so not a build's record")
    try:
        return msgspec.json.decode(data, type=BakedModel)
    except msgspec.DecodeError as exc:
        raise BakedRecordError(f"{path}: not a build's record ({exc})") from exc


def bake(
    name: str, cache_dir: Path, *, hub_url: str, deadline_s: float, progress: Progress | None = None
) -> BakedModel:
    """What an image's build runs: model `name` pulled into `cache_dir` if it can be, and the outcome
    written to the cache's baked.json either way; return that record.

    A failed download is recorded, not raised: the image then serves the bundled model. Raises
    CatalogueError for an unknown name or a bundled model that is not installed (a broken build),
    OSError when the record cannot be written.
    """
    model = entry(name)
    if model.repo is None:
        pull(name, cache_dir, hub_url=hub_url, deadline_s=deadline_s)  # checks the bundled file is there
        record = BakedModel(model=name)
    else:
        try:
            path = pull(name, cache_dir, hub_url=hub_url, deadline_s=deadline_s, progress=progress)
        except CatalogueError as exc:
            record = BakedModel(model=name, error=str(exc).removeprefix(f"MODEL={name}: "))
        else:
            record = BakedModel(model=name, file=path.name)
    write_record(cache_dir, record)
    return record


def plan_start(settings: Settings, baked: BakedModel | None) -> StartPlan:
    """What to do at start for these settings (MODEL, MODEL_CACHE_DIR, MODEL_PATH, MODEL_DOWNLOAD),
    given the build's record (`read_record`). Looks at the cache only; never downloads anything."""
    model, cache_dir = settings.model, settings.model_cache_dir
    if settings.model_path is not None or CATALOGUE[model].repo is None:
        return StartPlan()  # an explicit file, or the bundled model: nothing to fetch, nothing to explain
    if cached_path(model, cache_dir) is not None:
        return StartPlan()
    if settings.model_download == "missing":
        return StartPlan(download=True)
    if baked is not None and baked.model == model and baked.error:
        why = f"the image's build could not download {model} ({baked.error})"
        remedy = "rebuild the image where it can reach the model hub, or set MODEL_DOWNLOAD=missing"
    else:
        why = f"{model} is not in MODEL_CACHE_DIR {cache_dir} and MODEL_DOWNLOAD=never"
        remedy = f"run `python -m model_host.catalogue pull {model}`, or set MODEL_DOWNLOAD=missing"
    notice = f"offline: serving the bundled model {BUNDLED_MODEL}: {why}; to serve {model}, {remedy}"
    return StartPlan(notice=notice, level=logging.WARNING)
