"""servicekit.logs and servicekit.settings: the one line format, its keys, masking, and the settings."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr, ValidationError

from servicekit.logs import LIBRARY_LOGGERS, QUIET_LOGGERS, bind_job_id, setup_logging
from servicekit.settings import LogFormat, LogSettings
from tests.support.logs import TEXT_LINE
from tests.support.servers import ROOT

SECRET = "sk-proj-0123456789abcdef"


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Each test configures the process's logging; put it back as it was."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    names = (*LIBRARY_LOGGERS, *QUIET_LOGGERS)
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    }
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate = handlers, propagate
        logger.setLevel(level)
    structlog.reset_defaults()
    logging.captureWarnings(False)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_json_lines_have_the_fixed_keys_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("gateway", "INFO", "json")
    logging.getLogger("gateway.review").info("reviewed %d lines", 3)
    structlog.contextvars.bind_contextvars(request_id="req-1")
    bind_job_id("job-9")
    logging.getLogger("analyzer.analysis").warning("with ids")

    first, second = (json.loads(line) for line in lines(capsys))
    assert list(first) == ["timestamp", "level", "logger", "service", "request_id", "event"]
    assert first["level"] == "INFO"
    assert first["logger"] == "gateway.review"
    assert first["service"] == "gateway"
    assert first["request_id"] is None
    assert first["event"] == "reviewed 3 lines"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["timestamp"])
    assert list(second) == ["timestamp", "level", "logger", "service", "request_id", "job_id", "event"]
    assert (second["request_id"], second["job_id"], second["level"]) == ("req-1", "job-9", "WARNING")


def test_an_exception_is_one_json_line_with_its_traceback_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("fetcher", "INFO", "json")
    try:
        raise ValueError("bad tarball")
    except ValueError:
        logging.getLogger("fetcher.worker").exception("fetch crashed", extra={"job_id": "j1"})

    (line,) = lines(capsys)
    event = json.loads(line)
    assert event["event"] == "fetch crashed"
    assert event["job_id"] == "j1"  # `extra={"job_id": ...}` counts as bound
    assert event["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad tarball" in event["exception"]


def test_text_is_one_readable_line_with_the_traceback_below(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("analyzer", "DEBUG", "text")
    structlog.contextvars.bind_contextvars(request_id="abc-1")
    logging.getLogger("analyzer.app").debug("looked up %s", "pkg.mod.f")
    bind_job_id("j2")
    try:
        raise KeyError("x")
    except KeyError:
        logging.getLogger("analyzer.app").error("failed", exc_info=True)

    output = lines(capsys)
    assert TEXT_LINE.match(output[0])
    assert output[0].endswith(" DEBUG analyzer.app [request=abc-1] looked up pkg.mod.f")
    assert output[1].endswith(" ERROR analyzer.app [request=abc-1 job=j2] failed")
    assert output[2] == "Traceback (most recent call last):"
    assert output[-1] == "KeyError: 'x'"


def test_the_level_filters_and_quiet_libraries_stay_at_warning(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("fetcher", "WARNING", "text")
    logging.getLogger("fetcher.worker").info("not shown")
    logging.getLogger("fetcher.worker").warning("shown")
    setup_logging("fetcher", "DEBUG", "text")
    logging.getLogger("httpx").info("HTTP Request: GET https://api.github.com/...")

    assert [line.split("] ", 1)[1] for line in lines(capsys)] == ["shown"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_in_messages_extras_and_tracebacks(
    fmt: LogFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("gateway", "INFO", fmt, [SECRET, "abc"])
    log = logging.getLogger("gateway.upstream")
    log.info("calling with Bearer %s", SECRET)
    log.info("the alphabet starts abc")
    structlog.contextvars.bind_contextvars(request_id="r", header=f"Bearer {SECRET}")
    try:
        raise RuntimeError(f"provider echoed {SECRET}")
    except RuntimeError:
        log.exception("failed")
    structlog.get_logger("stamina").warning("retry", caused_by=RuntimeError(SECRET))

    output = capsys.readouterr().err
    assert SECRET not in output
    assert output.count("***") >= 5
    assert "calling with Bearer ***" in output
    assert "RuntimeError: provider echoed ***" in output
    # A secret shorter than 4 characters would mask pieces of words: it is left alone.
    assert "the alphabet starts abc" in output


def test_structlog_loggers_render_like_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("gateway", "INFO", "json")
    structlog.get_logger("stamina").warning("stamina.retry_scheduled", retry_num=1)

    (event,) = (json.loads(line) for line in lines(capsys))
    assert event["logger"] == "stamina"
    assert event["level"] == "WARNING"
    assert event["event"] == "stamina.retry_scheduled"
    assert event["retry_num"] == 1
    assert event["service"] == "gateway"


def test_library_handlers_go_and_a_second_setup_replaces_the_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler(sys.stderr))
    uvicorn_error.propagate = False
    setup_logging("model_host", "INFO", "text")
    setup_logging("model_host", "INFO", "json")
    uvicorn_error.info("Uvicorn running on http://127.0.0.1:8002")

    output = lines(capsys)
    assert len(output) == 1  # one handler, ours, renders it once
    assert json.loads(output[0])["logger"] == "uvicorn.error"
    assert uvicorn_error.handlers == []


def test_python_warnings_are_log_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("fetcher", "INFO", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("an old API", DeprecationWarning, stacklevel=1)

    (event,) = (json.loads(line) for line in lines(capsys))
    assert (event["logger"], event["level"]) == ("py.warnings", "WARNING")
    assert "DeprecationWarning: an old API" in event["event"]


def test_log_settings_refuse_unknown_values_naming_the_variable() -> None:
    assert LogSettings(log_level=" debug ", log_format="JSON").log_level == "DEBUG"
    assert LogSettings(log_format=" Json ").log_format == "json"
    # Empty, as `LOG_LEVEL=` in a .env or compose file: not set.
    assert (LogSettings(log_level="").log_level, LogSettings(log_format=" ").log_format) == ("INFO", "text")
    with pytest.raises(
        ValidationError, match="LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'loud'"
    ):
        LogSettings(log_level="loud")
    with pytest.raises(ValidationError, match="LOG_FORMAT must be text or json, not 'xml'"):
        LogSettings(log_format="xml")


def test_secret_values_are_every_secret_setting_and_each_listed_key() -> None:
    class WithKeys(LogSettings):
        api_keys: SecretStr = SecretStr("key-one, key-two")
        token: SecretStr | None = None
        plain: str = "not a secret"

    assert set(WithKeys().secret_values()) == {"key-one, key-two", "key-one", "key-two"}
    assert WithKeys(token=SecretStr("ghp_x")).secret_values()[-1] == "ghp_x"


@pytest.mark.parametrize("service", ["analyzer", "gateway", "fetcher", "model_host"])
def test_a_bad_log_setting_stops_every_service_naming_the_variable(service: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", service],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "loud", "LOG_FORMAT": "xml"},
        cwd=tmp_path,  # away from the repository's .env
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"{service}: invalid configuration, not starting:\n")
    assert (
        "LOG_LEVEL: Value error, LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'loud'"
        in result.stderr
    )
    assert "LOG_FORMAT: Value error, LOG_FORMAT must be text or json, not 'xml'" in result.stderr
    assert "Traceback" not in result.stderr


# A repository file name or request path as an attacker writes it: a forged line (LF and CR),
# colour (ESC), the 8-bit CSI U+009B, and a right-to-left override that shows `txt.exe` as `exe.txt`.
HOSTILE = "src/a\n2026-01-01T00:00:00.000000Z ERROR forged [request=-] x\r\x1b[31mred\x9b2J\u202etxt.exe"
HOSTILE_SHOWN = (
    "src/a\\n2026-01-01T00:00:00.000000Z ERROR forged [request=-] x\\r\\x1b[31mred\\x9b2J\\u202etxt.exe"
)


def test_text_lines_escape_control_and_bidi_characters_wherever_they_come_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("analyzer", "INFO", "text")
    structlog.contextvars.bind_contextvars(request_id="r1", path=HOSTILE)
    log = logging.getLogger("analyzer.analysis")
    log.info("reviewed %s", HOSTILE)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("failed on %s", "ok")
    log.info("ordinary: café, 関数, tab-free \\ backslash [x]")

    reviewed, failed, *traceback, ordinary = lines(capsys)
    assert reviewed.endswith(f"[request=r1] reviewed {HOSTILE_SHOWN} path={HOSTILE_SHOWN}")
    assert failed.endswith(f"[request=r1] failed on ok path={HOSTILE_SHOWN}")
    assert traceback[0] == "Traceback (most recent call last):"
    # The exception's message is one line too: the forged line inside it does not start a line.
    assert traceback[-1] == f"ValueError: {HOSTILE_SHOWN}"
    assert ordinary.endswith(
        "[request=r1] ordinary: café, 関数, tab-free \\ backslash [x] path=" + HOSTILE_SHOWN
    )
    output = "\n".join([reviewed, failed, *traceback, ordinary])
    assert not {"\x1b", "\r", "\x9b", "\u202e"} & set(output)
    assert not [line for line in output.splitlines() if line.startswith("2026-01-01T00:00:00.000000Z")]


def test_an_ordinary_text_line_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("gateway", "INFO", "text")
    logging.getLogger("gateway.review").info("review: 2 suggestions via local/smollm2 (é, 中文, 100%)")
    (line,) = lines(capsys)
    assert line.endswith(
        " INFO gateway.review [request=-] review: 2 suggestions via local/smollm2 (é, 中文, 100%)"
    )


def test_json_lines_write_control_and_bidi_characters_as_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("analyzer", "INFO", "json")
    structlog.contextvars.bind_contextvars(path=HOSTILE)
    logging.getLogger("analyzer.analysis").info("reviewed %s \x7f é 中文", HOSTILE)

    (line,) = lines(capsys)
    raw = line.encode()
    for char in ("\n", "\r", "\x1b", "\x7f", "\x9b", "\u202e"):
        assert char.encode() not in raw, repr(char)
    assert "\\u009b" in line
    assert "\\u202e" in line
    assert "é 中文" in line  # ordinary Unicode stays as it is
    event = json.loads(line)
    assert event["event"] == f"reviewed {HOSTILE} \x7f é 中文"  # decoded, exactly what was logged
    assert event["path"] == HOSTILE


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_exception_without_a_traceback_stays_on_its_line(
    fmt: LogFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    # As FastStream logs nats-py's UnexpectedEOF when NATS drops: an exception never raised.
    setup_logging("fetcher", "INFO", fmt)
    logging.getLogger("fetcher.broker").warning(
        "Connection broken with %r", EOFError("gone"), exc_info=EOFError("nats: unexpected EOF")
    )

    (line,) = lines(capsys)
    if fmt == "text":
        assert TEXT_LINE.match(line)
        assert line.endswith(
            " WARNING fetcher.broker [request=-] Connection broken with EOFError('gone') "
            "exception=EOFError: nats: unexpected EOF"
        )
    else:
        event = json.loads(line)
        assert (event["level"], event["exception"]) == ("WARNING", "EOFError: nats: unexpected EOF")
