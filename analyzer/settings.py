"""The analyzer's configuration, read from the environment (and `.env`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from review_contract import MAX_CONTEXT_CHARS
from servicekit.access import AccessSettings
from servicekit.nats_calls import ELECTION_DEADLINE_S
from servicekit.serving import DEFAULT_SHUTDOWN_TIMEOUT_S
from servicekit.settings import LogSettings


class Settings(AccessSettings, LogSettings):
    """Field names are the environment variable names in lower case (ANALYZER_PORT -> analyzer_port).

    CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT come from servicekit.access, LOG_LEVEL and
    LOG_FORMAT from servicekit.settings, as in every service.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    analyzer_host: str = "127.0.0.1"
    analyzer_port: int = Field(default=8000, ge=1, le=65535)
    nats_url: str = "nats://127.0.0.1:4222"
    # Seconds to wait for NATS at start-up and for each request to it.
    nats_timeout_s: float = Field(default=5.0, gt=0)
    # How long to keep trying to reach NATS (and its JetStream) at start-up before giving up
    # (reconnects later never stop).
    nats_start_wait_s: float = Field(default=30.0, ge=0)
    # How long one request waits in all for NATS to answer (a JetStream leader election after a
    # node loss: see ELECTION_DEADLINE_S), retrying "not ready" with backoff; then 503 with
    # Retry-After. Below the clients' timeouts, so they hear why.
    nats_request_deadline_s: float = Field(default=ELECTION_DEADLINE_S, gt=0)
    # On SIGTERM: how long requests in flight may take to finish before they are cut.
    shutdown_timeout_s: int = Field(default=DEFAULT_SHUTDOWN_TIMEOUT_S, ge=1)

    # Base URL of the gateway's OpenAI-compatible API, and the virtual model that applies its review prompt.
    gateway_url: str = "http://127.0.0.1:8001/v1"
    gateway_model: str = "code-review"
    # The bearer token sent to the gateway (one of its CODEREVIEW_API_KEYS when it has some).
    gateway_api_key: SecretStr = SecretStr("codereview-analyzer")
    # Seconds for one gateway call (the model's time included), and extra attempts on connection
    # errors, 408/429/5xx and timeouts. No retries by default (0): the gateway retries its
    # providers itself, and a retried timeout would double an already long wait.
    gateway_timeout_s: float = Field(default=120.0, gt=0)
    gateway_retries: int = Field(default=0, ge=0, le=10)

    # POST /analyze/function on a job still queued or fetching waits this long for it, then answers 409.
    analyzer_wait_timeout_s: float = Field(default=60.0, ge=0)
    # Seconds a ready job's record is reused for reviews before NATS is asked again (0: always ask).
    analyzer_ready_cache_s: float = Field(default=5.0, ge=0)
    # Characters of function source sent to the model at most (about 4 characters a token).
    analyzer_source_max_chars: int = Field(default=12_000, ge=200)
    # Review a function in its module: the repository's ruff configuration, the type check's
    # findings and what the function uses from the repository go to the gateway with it. False:
    # the function alone, as POST /analyze reviews it.
    analyzer_review_context: bool = True
    # Characters of what the function uses (signatures, docstrings, attributes, constants) the
    # model is given at most: ~4 characters a token, so the default costs a local model ~1 s.
    analyzer_context_max_chars: int = Field(default=3_000, ge=0, le=MAX_CONTEXT_CHARS)
    # Decoded snapshots (and their function index) kept in memory: at most this many, and this many bytes.
    analyzer_snapshot_cache_entries: int = Field(default=8, ge=1)
    analyzer_snapshot_cache_bytes: int = Field(default=1_000_000_000, ge=1)
    # Load a job's snapshot into the cache as soon as the fetcher announces it completed.
    analyzer_preload: bool = True
    # Parse a cached snapshot's remaining files in a background process, so that lookups never parse.
    analyzer_warm_index: bool = True
    # What parsing one file may take, in a worker process: a file over a budget is set aside as
    # unparsable, with the reason (a lookup of its functions answers 422). Bytes of source; CPU
    # seconds (whole seconds: the kernel's RLIMIT_CPU); the worker's address space in bytes.
    analyzer_parse_max_bytes: int = Field(default=2_000_000, ge=1)
    analyzer_parse_cpu_s: int = Field(default=10, ge=1)
    analyzer_parse_memory_bytes: int = Field(default=2_000_000_000, ge=200_000_000)

    # GET /analyze/jobs/{id}/functions: seconds of listing work one page may take (past it, the
    # page answers what it found and a cursor to go on from), and the function and class names one
    # snapshot's listing holds at most (past it, 422).
    analyzer_functions_page_s: float = Field(default=0.25, gt=0, le=60)
    analyzer_functions_max_names: int = Field(default=1_000_000, ge=1)

    # GET /metrics (Prometheus) and the per-request counting behind it; off: neither.
    metrics_enabled: bool = True

    # The type check of a whole snapshot with ty (analyzer.typecheck), once per snapshot in the
    # background; its findings join the reviews of that snapshot's functions. Seconds for the
    # whole check (its processes are killed past it); address space of one ty process in bytes
    # (the files are checked in chunks sized to it); ty's worker threads; checks at once; how long
    # a review waits for a check still running before it goes on without types (and uncached):
    # a small repository's check ends within it, a stdlib-sized one's in ~10 s off the request path.
    analyzer_typecheck_enabled: bool = True
    analyzer_typecheck_timeout_s: float = Field(default=60.0, gt=0)
    analyzer_typecheck_memory_bytes: int = Field(default=500_000_000, ge=200_000_000)
    analyzer_typecheck_threads: int = Field(default=2, ge=1, le=64)
    analyzer_typecheck_concurrency: int = Field(default=1, ge=1, le=16)
    analyzer_typecheck_wait_s: float = Field(default=2.0, ge=0)

    # -- scans (POST /analyze/scan; analyzer.scan, docs/analyzer.md "Scans") --
    # Scan workers in this process, pulling pieces from the queue every analyzer shares (0: this
    # analyzer serves the scan routes but checks no pieces).
    analyzer_scan_workers: int = Field(default=1, ge=0, le=64)
    # A piece (one queue message) holds at most this many files and this many bytes of source
    # (a file larger than the bytes is a piece of its own).
    analyzer_scan_piece_files: int = Field(default=50, ge=1, le=10_000)
    analyzer_scan_piece_bytes: int = Field(default=4_000_000, ge=1)
    # A scan of more files than this (after `paths`) fails, saying so.
    analyzer_scan_max_files: int = Field(default=20_000, ge=1)
    # Seconds one piece may take to check; past it the attempt counts as failed.
    analyzer_scan_piece_timeout_s: float = Field(default=300.0, gt=0)
    # Seconds without a heartbeat after which NATS gives a piece to another worker (a worker
    # that died), and how many times a piece is tried before its scan fails.
    analyzer_scan_ack_wait_s: float = Field(default=30.0, ge=1)
    analyzer_scan_max_attempts: int = Field(default=3, ge=1, le=20)
    # How long a pull request scan waits for a fetcher to describe the pull request (the
    # fetcher's own bound, FETCHER_PULL_TIMEOUT_S, is 60 s).
    analyzer_scan_pull_timeout_s: float = Field(default=90.0, gt=0)
    # How long a scan waits for its job's fetch before it fails.
    analyzer_scan_job_wait_s: float = Field(default=600.0, gt=0)
    # The model budget of a "model" scan when the request names none.
    analyzer_scan_max_functions: int = Field(default=500, ge=0)
    analyzer_scan_max_tokens: int = Field(default=2_000_000, ge=0)
    # Results in a scan's SARIF log at most (GitHub code scanning takes 25,000 a run).
    analyzer_scan_sarif_max_results: int = Field(default=25_000, ge=1)
    # Seconds between two progress events of one scan (at least).
    analyzer_scan_progress_every_s: float = Field(default=0.5, ge=0)
    # The scan queue's bounds (messages, bytes, seconds) and the `scans` bucket's (bytes, seconds).
    analyzer_scan_queue_max_msgs: int = Field(default=100_000, ge=1)
    analyzer_scan_queue_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    analyzer_scan_queue_max_age_s: float = Field(default=86_400.0, gt=0)
    analyzer_scans_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    analyzer_scans_max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    # Reviews of a "model" scan in flight at once per piece, and how long a piece waits for the
    # snapshot's type check, from its start, before it goes on without types (analyzer.scan.pieces).
    analyzer_scan_model_concurrency: int = Field(default=2, ge=1, le=64)
    analyzer_scan_typecheck_wait_s: float = Field(default=60.0, ge=0)
