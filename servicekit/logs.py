"""One logging setup for the four services: every line, ours and the libraries', in one format.

The services log through the standard library (`logging.getLogger(__name__)`), as uvicorn,
Litestar, FastStream, nats-py and llama-cpp-python do; one root handler renders every record
through structlog's ProcessorFormatter, so a line looks the same whoever wrote it:

- `text` (the default): `2026-11-30T05:33:00.123456Z INFO analyzer.app [request=ab12 job=53b0] message`
  (`job=` only where one is bound) plus `key=value` for any other bound value, and a traceback
  on the lines below when there is one;
- `json`: one object a line with the keys `timestamp` (ISO-8601, UTC), `level`, `logger`,
  `service`, `request_id` (null outside a request), `job_id` (only where bound), `event`, then
  any other bound value and `exception` (the traceback's text) where there is one.

The request id and job id come from structlog's context variables (servicekit.request_id binds
the request id; the analyzer and fetcher bind the job id). Every secret the service holds is
masked as `***` in every value and in the rendered line.

Nothing from outside (a request path, a repository's file name, an exception's message) can
forge a line or reach a terminal as a control sequence: in `text`, every control and bidi
character is written as a visible escape (`\\n`, `\\x1b`, `\\u202e`: servicekit.text.printable);
only a traceback keeps its own line breaks. In `json`, those JSON leaves raw (DEL, C1 such as
U+009B, the bidi controls) are written as `\\u` escapes, so each value decodes to what was logged.
An exception logged without a traceback (a library passing an exception it never raised, as
FastStream does with nats-py's `UnexpectedEOF` when NATS drops) stays on its line
(`exception=...`) instead of a bare line below it.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

from servicekit.settings import LogFormat
from servicekit.text import json_printable, printable

MASK = "***"
# How a formatted exception that has a stack starts (an ExceptionGroup's is indented).
TRACEBACK_HEAD = "Traceback (most recent call last):"
# A secret shorter than this would mask pieces of ordinary words; no real key is that short.
MIN_SECRET_CHARS = 4
# Libraries that attach their own handlers: theirs go, so each record is rendered once, by ours.
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "faststream", "nats")
# Chatty at INFO and never about our work: request lines of HTTP clients (httpx2 is the openai
# package's: a line for every gateway call), llama.cpp's load log.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "llama-cpp-python")


class _Masker:
    """Replaces every secret in every string value, then in the rendered line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a key that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def values(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        if self.secrets:
            for key, value in event_dict.items():
                if isinstance(value, str):
                    event_dict[key] = self.mask(value)
        return event_dict


def _shape(service: str) -> Processor:
    """The fixed keys first, in a fixed order; job_id only where bound; the rest after the event."""

    def shape(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        shaped: dict[str, Any] = {
            "timestamp": event_dict.pop("timestamp"),
            "level": str(event_dict.pop("level")).upper(),
            "logger": event_dict.pop("logger", None) or "root",
            "service": service,
            "request_id": event_dict.pop("request_id", None),
        }
        job_id = event_dict.pop("job_id", None)
        if job_id is not None:
            shaped["job_id"] = job_id
        shaped["event"] = event_dict.pop("event", "")
        shaped.update(event_dict)
        return shaped

    return shape


def _text_line(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """One readable line: `timestamp LEVEL logger [request=.. job=..] event key=value`, traceback below.

    Control and bidi characters are escaped (servicekit.text.printable): a value holding a line
    feed or an ESC cannot forge a line or colour the terminal. An exception without a stack is
    one more `exception=` value on the line; a traceback follows on the lines below, each line
    escaped the same way (its own line breaks kept).
    """
    exception = event_dict.pop("exception", None)
    ids = f"request={event_dict.pop('request_id', None) or '-'}"
    if "job_id" in event_dict:
        ids += f" job={event_dict.pop('job_id')}"
    head = (
        f"{event_dict.pop('timestamp')} {event_dict.pop('level')} "
        f"{event_dict.pop('logger')} [{ids}] {event_dict.pop('event')}"
    )
    event_dict.pop("service", None)
    if exception and TRACEBACK_HEAD not in str(exception):
        # Never raised, so no stack: only "Type: message", which belongs on the line it explains.
        event_dict["exception"] = exception
        exception = None
    rest = "".join(f" {key}={value}" for key, value in event_dict.items())
    line = printable(head + rest)
    if exception:
        line += "".join("\n" + printable(text) for text in str(exception).split("\n"))
    return line


def _text_exception(exc_info: ExcInfo) -> str:
    """The traceback as Python prints it, except that each exception's own text (its message and
    notes) that spans several lines is written on one, with `\\n`: a message holding a line feed
    and a forged log line after it cannot start a line of its own below the traceback."""
    text = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc_info[1]]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        pending += [exc.__cause__, exc.__context__]
        if isinstance(exc, BaseExceptionGroup):
            pending += exc.exceptions
        own = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
        if "\n" in own:
            text = text.replace(own, printable(own))
    return text


def _json_line(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    return json_printable(json.dumps(event_dict, default=str, ensure_ascii=False))


def _stamp() -> list[Processor]:
    """What every event gets before rendering, whichever API logged it."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def formatter(service: str, fmt: LogFormat, secrets: Iterable[str] = ()) -> logging.Formatter:
    """The formatter that renders every record of `service` as `fmt`, with `secrets` masked."""
    masker = _Masker(secrets)

    def mask_line(_: WrappedLogger, __: str, line: MutableMapping[str, Any] | str) -> str:
        # After rendering: what a value's str() or repr() let through is caught here.
        return masker.mask(line) if isinstance(line, str) else str(line)

    pre_chain: list[Processor] = [*_stamp(), structlog.stdlib.ExtraAdder(allow=("job_id", "request_id"))]
    processors: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        # In text, a traceback is on the lines below its line: exceptions' own text is kept to one.
        structlog.processors.ExceptionRenderer(_text_exception)
        if fmt == "text"
        else structlog.processors.format_exc_info,
        structlog.processors.StackInfoRenderer(),
        _shape(service),
        masker.values,
        _json_line if fmt == "json" else _text_line,
        mask_line,
    ]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=processors)


def _stdlib_logger(*args: Any) -> logging.Logger:
    """The stdlib logger `structlog.get_logger(name)` writes to. Not structlog's LoggerFactory: that
    one sets a logger class for the whole process, whose caller lookup costs every record time."""
    return logging.getLogger(args[0] if args and isinstance(args[0], str) else None)


def setup_logging(
    service: str, level: str = "INFO", fmt: LogFormat = "text", secrets: Iterable[str] = ()
) -> None:
    """Send every log record of this process to stderr through one handler rendering `fmt` at `level`.

    Idempotent: a second call replaces the first one's handler. Loggers of the libraries in
    LIBRARY_LOGGERS lose their own handlers and propagate to ours; call it before anything
    else logs, and give uvicorn `log_config=None` so it does not configure its loggers again.
    """
    level = level.upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(service, fmt, secrets))
    handler._servicekit = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_servicekit", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.setLevel(logging.NOTSET)
    # Python's warnings too, as records of `py.warnings`, not loose lines on stderr.
    logging.captureWarnings(True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Libraries that log through structlog (stamina's retry hook) reach the same handler.
    structlog.configure(
        processors=[
            *_stamp(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=_stdlib_logger,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def bind_job_id(job_id: str) -> None:
    """Name `job_id` on every line this context logs from now on (a request's or a task's own)."""
    structlog.contextvars.bind_contextvars(job_id=job_id)
