"""Everything the gateway reads from the environment (and `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.access import AccessSettings
from servicekit.serving import DEFAULT_SHUTDOWN_TIMEOUT_S
from servicekit.settings import LogSettings

ProviderName = Literal["openai", "deepseek", "local"]
PROVIDER_NAMES: tuple[str, ...] = get_args(ProviderName)


class Settings(AccessSettings, LogSettings):
    """Gateway settings; each field reads the environment variable of the same name in upper case.

    Raises `pydantic.ValidationError` when a value is malformed, when `LLM_PROVIDER` or `LLM_FALLBACK`
    names an unknown provider, or when a provider in the chain needs an API key that is missing
    (the message names the variable). CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT come from
    servicekit.access, as in the analyzer.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8001, ge=0, le=65535)
    # GET /metrics (Prometheus) and the per-request counting behind it; off: neither.
    metrics_enabled: bool = True

    llm_provider: ProviderName = "local"
    # Comma-separated providers tried in order when the chosen one fails for good, e.g. "local".
    llm_fallback: str = ""

    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"

    deepseek_api_key: SecretStr | None = None
    deepseek_base_url: str = "https://api.deepseek.com"
    deepseek_model: str = "deepseek-chat"

    local_llm_base_url: str = "http://127.0.0.1:8002/v1"
    # Empty: the first model the local host lists at /v1/models (the one it serves).
    local_llm_model: str = ""
    local_llm_api_key: SecretStr | None = None

    # SSH tunnel to a model host reachable only by SSH: LOCAL_LLM_BASE_URL is then resolved on the SSH server.
    local_llm_ssh_host: str | None = None
    local_llm_ssh_port: int = Field(default=22, ge=1, le=65535)
    local_llm_ssh_user: str | None = None
    local_llm_ssh_key: Path | None = None
    # Empty: ~/.ssh/known_hosts. The server's host key is always checked.
    local_llm_ssh_known_hosts: Path | None = None

    # Extra CA certificates (PEM) to trust for https providers, e.g. a company proxy's CA.
    llm_ca_bundle: Path | None = None
    llm_connect_timeout: float = Field(default=5.0, gt=0)
    llm_read_timeout: float = Field(default=120.0, gt=0)
    # The whole call, retries and every byte of the answer included, however slowly they trickle in.
    llm_total_timeout: float = Field(default=300.0, gt=0)
    # A provider's answer larger than this (decompressed, streamed or not) is refused: 502.
    llm_max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Connections open to providers at once, all hosts together; more requests wait for one.
    llm_max_connections: int = Field(default=100, ge=1)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_retry_backoff: float = Field(default=0.5, ge=0)
    llm_retry_after_max: float = Field(default=30.0, ge=0)

    review_max_suggestions: int = Field(default=8, ge=1, le=50)
    review_max_code_bytes: int = Field(default=65536, ge=1)
    review_max_tokens: int = Field(default=300, ge=16)
    review_temperature: float = Field(default=0.2, ge=0, le=2)
    # POST /checks: the largest request body (all its modules together); larger ones get 413.
    gateway_checks_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    review_cache_ttl: float = Field(default=86400.0, ge=0)
    review_cache_size: int = Field(default=4096, ge=0)
    review_cache_bucket: str = "gateway_reviews"
    # Bytes all cached reviews may take, as JSON: the memory cache drops its least recent past it,
    # the NATS bucket its oldest.
    review_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # A review whose JSON is larger is answered but not cached (NATS's default max payload is 1 MiB).
    review_cache_max_entry_bytes: int = Field(default=256 * 1024, ge=1024)
    # With NATS_URL: each cache read or write waits this long for NATS at most; one that fails turns
    # the cache off for a second (reviews skip it), then the next call tries it again.
    review_cache_timeout_s: float = Field(default=0.05, gt=0, le=10)
    nats_url: str | None = None
    # With NATS_URL: how long to keep trying to reach NATS (and its JetStream) at start-up before
    # refusing to start; once connected, reconnects never stop (cache calls meanwhile are misses).
    nats_start_wait_s: float = Field(default=30.0, ge=0)
    # On SIGTERM: how long requests in flight may take to finish before they are cut.
    shutdown_timeout_s: int = Field(default=DEFAULT_SHUTDOWN_TIMEOUT_S, ge=1)
    # Copies of the review cache bucket on a NATS cluster (3 survives the loss of one node).
    nats_replicas: int = Field(default=1, ge=1, le=5)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        # `VAR=` in .env or compose means "not set": the default, never an empty URL, path or name.
        if value == "" and info.field_name is not None:
            return cls.model_fields[info.field_name].default
        return value

    @model_validator(mode="after")
    def _chain_is_usable(self) -> Settings:
        for name in self.provider_chain:
            if name not in PROVIDER_NAMES:
                raise ValueError(
                    f"LLM_FALLBACK names unknown provider {name!r}; use {', '.join(PROVIDER_NAMES)}"
                )
            if name == "openai" and not _has(self.openai_api_key):
                raise ValueError(f"provider {name!r} is in the chain but OPENAI_API_KEY is not set")
            if name == "deepseek" and not _has(self.deepseek_api_key):
                raise ValueError(f"provider {name!r} is in the chain but DEEPSEEK_API_KEY is not set")
        return self

    @property
    def provider_chain(self) -> list[str]:
        """The chosen provider first, then the fallbacks, without repeats."""
        chain: list[str] = [self.llm_provider]
        for part in self.llm_fallback.split(","):
            name = part.strip().lower()
            if name and name not in chain:
                chain.append(name)
        return chain


def _has(secret: SecretStr | None) -> bool:
    return secret is not None and secret.get_secret_value().strip() != ""
