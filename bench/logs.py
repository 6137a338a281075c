"""What one log line costs: servicekit's text and json against a plain stdlib formatter.

Each renders the gateway's per-review line (`review: 3 suggestions via local/smollm2 (cached)`)
with a request id bound and three secrets to mask, written to /dev/null, in this process; the
formats alternate for --rounds=N (default 5) of --lines=N (default 5000) and the best round of
each is printed, so a busy machine's noise shows less. The stdlib line is the hand-written setup
the services had before (`%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s`).
The end-to-end figure is `LOG_LEVEL=INFO LOG_FORMAT=json python -m bench gateway`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import structlog

from servicekit.logs import setup_logging

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("bench_request_id", default="-")
SECRETS = ["sk-proj-0123456789abcdef", "key-one", "key-two"]


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get()
        return True


def _stdlib(stream: TextIO) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(_RequestId())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)


def main(argv: list[str]) -> None:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    rounds, lines = int(options.get("rounds", 5)), int(options.get("lines", 5000))
    log = logging.getLogger("gateway.routes")
    structlog.contextvars.bind_contextvars(request_id="abcdef0123456789")
    _REQUEST_ID.set("abcdef0123456789")
    setups: dict[str, Callable[[TextIO], None]] = {
        "stdlib Formatter (before)": _stdlib,
        "servicekit text": lambda _: setup_logging("gateway", "INFO", "text", SECRETS),
        "servicekit json": lambda _: setup_logging("gateway", "INFO", "json", SECRETS),
    }
    best: dict[str, float] = {}
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    with Path(os.devnull).open("w") as devnull, contextlib.redirect_stderr(devnull):
        try:
            for _ in range(rounds):
                for name, setup in setups.items():
                    setup(devnull)
                    started = time.perf_counter()
                    for _ in range(lines):
                        log.info("review: %d suggestions via %s/%s%s", 3, "local", "smollm2", " (cached)")
                    per_line = (time.perf_counter() - started) / lines
                    best[name] = min(best.get(name, per_line), per_line)
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
    print(f"{lines} lines x {rounds} rounds, best round, load average {os.getloadavg()[0]:.1f}")
    for name, seconds in best.items():
        print(f"{name:<28} {seconds * 1e6:6.1f} us per line")
