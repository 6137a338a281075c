"""The settings every service reads the same way (LOG_LEVEL, LOG_FORMAT), and one way to refuse bad ones."""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings

LogFormat = Literal["text", "json"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

S = TypeVar("S", bound=BaseSettings)


class LogSettings(BaseSettings):
    """LOG_LEVEL and LOG_FORMAT; each service's Settings inherits them, so one line in a shared
    `.env` sets every service."""

    log_level: str = "INFO"
    # text: one readable line an event; json: one JSON object a line, for a log collector.
    log_format: LogFormat = "text"

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: object) -> str:
        # `LOG_LEVEL=` in .env or compose means "not set", as for the other settings.
        level = str(value).strip().upper() or "INFO"
        if level not in LEVELS:
            raise ValueError(f"LOG_LEVEL must be {', '.join(LEVELS[:-1])} or {LEVELS[-1]}, not {value!r}")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> str:
        form = str(value).strip().lower() or "text"
        if form not in ("text", "json"):
            raise ValueError(f"LOG_FORMAT must be text or json, not {value!r}")
        return form

    def secret_values(self) -> list[str]:
        """Every SecretStr setting's value, and each part of a comma-separated one (API key lists):
        what the log setup masks."""
        found: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                whole = value.get_secret_value()
                found += [whole, *(part.strip() for part in whole.split(","))]
        return found


def load_settings(cls: type[S], service: str) -> S:
    """`cls()` from the environment; on a bad value, a message naming each variable on stderr and exit 2.

    Only locations and messages are printed: pydantic's own text echoes the input, keys included.
    """
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]).upper()
            lines.append(f"  {where + ': ' if where else ''}{error['msg']}")
        print(f"{service}: invalid configuration, not starting:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
