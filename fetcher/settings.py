"""Settings of the fetcher, read from the environment (and `.env`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from jobs_contract.settings import MIB, StorageSettings
from servicekit.serving import DEFAULT_SHUTDOWN_TIMEOUT_S
from servicekit.settings import LogSettings

KIB = 1024


class Settings(StorageSettings, LogSettings):
    """Field names are the environment variables in lower case (`nats_url` reads NATS_URL).

    The storage limits of the buckets (JOBS_MAX_AGE_S, ...) come from the contract's StorageSettings,
    LOG_LEVEL and LOG_FORMAT from servicekit's LogSettings.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # How long to keep trying to reach NATS (and its JetStream) at start-up before giving up;
    # once connected, reconnects never stop.
    nats_start_wait_s: float = Field(default=30.0, ge=0)
    # On SIGTERM the fetcher stops pulling and hands its running fetches back to JetStream at
    # once (redelivered to another fetcher); this bounds the whole stop.
    shutdown_timeout_s: int = Field(default=DEFAULT_SHUTDOWN_TIMEOUT_S, ge=1)
    github_api_url: str = "https://api.github.com"
    # Sent only to the host of GITHUB_API_URL, never to codeload or anywhere else; masked in logs.
    github_token: SecretStr | None = None

    # GET /health (200 when consuming) on this port; 0 turns the HTTP side off.
    fetcher_host: str = "127.0.0.1"
    fetcher_health_port: int = Field(default=8003, ge=0, le=65535)
    # GET /metrics (Prometheus) on the health port, and the counting behind it; off: neither.
    metrics_enabled: bool = True

    # Limits: a repository past any of them fails its job with a reason naming the variable.
    fetcher_max_download_bytes: int = Field(default=500 * MIB, gt=0)
    fetcher_max_members: int = Field(default=100_000, gt=0)
    fetcher_max_file_bytes: int = Field(default=10 * MIB, gt=0)
    fetcher_max_unpacked_bytes: int = Field(default=2048 * MIB, gt=0)
    # All kept files of one repository together (.py and lint configuration): held in memory
    # while fetching, then stored.
    fetcher_max_snapshot_bytes: int = Field(default=64 * MIB, gt=0)
    # A lint configuration file (pyproject.toml, ruff.toml, .ruff.toml) larger than this is left
    # out of the snapshot (listed as skipped), not a failure: no real one comes near it.
    fetcher_max_config_bytes: int = Field(default=1 * MIB, gt=0)
    # The whole download (redirects, rate-limit waits and retries included), however slowly the
    # bytes come: the HTTP timeout only bounds the wait for each read.
    fetcher_download_timeout_s: float = Field(default=300.0, gt=0)
    # The floor rate: a download that receives fewer than FETCHER_MIN_RATE_BYTES_S x
    # FETCHER_MIN_RATE_WINDOW_S bytes in a window of that many seconds (counted from GitHub's
    # answer to the archive request; only the waits for the body's bytes count) fails naming
    # these, so it frees its slot for the queued jobs instead of holding it until the deadline;
    # 0 turns the floor off.
    fetcher_min_rate_bytes_s: int = Field(default=10 * KIB, ge=0)
    fetcher_min_rate_window_s: float = Field(default=30.0, gt=0)

    # JetStream delivery: a request not acknowledged within the ack wait goes to another fetcher
    # (a running fetch reports progress to the server, so only a dead fetcher's requests time out).
    fetcher_ack_wait_s: float = Field(default=30.0, gt=0)
    fetcher_max_deliveries: int = Field(default=3, ge=1)
    # Jobs one fetcher works on at once; it pulls the next request as soon as one of them ends.
    fetcher_concurrency: int = Field(default=2, ge=1)

    # GitHub: per-request timeout, retries of 5xx and dropped connections, and how long to wait
    # for a rate limit to reset before failing.
    fetcher_http_timeout_s: float = Field(default=30.0, gt=0)
    fetcher_http_retries: int = Field(default=3, ge=0)
    fetcher_retry_backoff_s: float = Field(default=0.5, ge=0)
    fetcher_rate_limit_max_wait_s: float = Field(default=60.0, ge=0)
    fetcher_max_redirects: int = Field(default=3, ge=0)

    # Pull requests described for scans (PULLS_SUBJECT, request-reply): the most files described
    # (GitHub itself lists at most 3,000; past it the answer is `truncated`), the most bytes of one
    # API answer (a page of 100 files with their patches) and of one file's patch (a larger one is
    # skipped), the whole answer's deadline (retries and rate-limit waits included), and how many
    # one fetcher answers at once (beside its fetch jobs).
    fetcher_pull_max_files: int = Field(default=3_000, ge=1, le=3_000)
    fetcher_pull_max_page_bytes: int = Field(default=16 * MIB, gt=0)
    fetcher_pull_max_patch_bytes: int = Field(default=1 * MIB, gt=0)
    fetcher_pull_timeout_s: float = Field(default=60.0, gt=0)
    fetcher_pull_concurrency: int = Field(default=4, ge=1)

    # Job progress goes to KV and the progress subject at most this often.
    fetcher_progress_interval_s: float = Field(default=0.5, ge=0)
