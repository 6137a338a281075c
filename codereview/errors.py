"""Exit codes, and the one error every command raises to stop with a clear line."""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """What a `codereview` run ended with; scripts branch on these."""

    OK = 0
    # Only with --fail-on-suggestions: the review found something to change.
    SUGGESTIONS = 1
    # A bad command line or bad input (click uses 2 for its own usage errors too).
    USAGE = 2
    # An unknown job or function (the analyzer's 404), or a local file or function that is not there.
    NOT_FOUND = 3
    # A service could not be reached, failed, timed out, or a job failed.
    SERVICE = 4


class CliError(Exception):
    """Stops a command: `message` is the whole line the person reads (which service, what it said,
    what to try); `details` goes into the --json error object."""

    def __init__(self, message: str, code: ExitCode, *, service: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.service = service
        self.details = details

    def as_json(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "service": self.service,
                "exit_code": int(self.code),
                **self.details,
            }
        }
