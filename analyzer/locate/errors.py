"""What a lookup raises: a malformed name, a name that is not there, a file that cannot be read.

Named apart from the HTTP errors of `analyzer.errors`, which the analyzer maps these to.
"""

# Names say what went wrong, as the style guide has it for the HTTP errors too.
# ruff: noqa: N818

from __future__ import annotations

import sys

_PARSER = f"Python {sys.version_info.major}.{sys.version_info.minor}"


def shown(name: str) -> str:
    """A name as error messages quote it: whole, unless it is very long."""
    return repr(name if len(name) <= 200 else name[:200] + "...")


class LookupFailed(Exception):
    """Base of the errors a lookup raises."""


class MalformedName(LookupFailed, ValueError):
    """The name is empty or is not a dotted Python name."""


class NameNotFound(LookupFailed, LookupError):
    """No function or class of that name exists in the snapshot."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        message = f"no function named {shown(name)} in this repository"
        if suggestions:
            message += "; close names that exist: " + ", ".join(suggestions)
        super().__init__(message)


class SearchFailed(LookupFailed):
    """The snapshot's text could not be searched for the name within the budget of a search."""


class UnparsableSource(LookupFailed):
    """The file that holds the name cannot be read as Python (Python 2, a syntax error, bad bytes)."""

    def __init__(self, name: str, path: str, error: str, via: str | None = None) -> None:
        self.name = name
        self.path = path
        self.error = error
        # The file whose import led to `path`, when the name reached it through a re-export.
        self.via = via
        # The message stands alone (the app answers it as is): one line, the file, why, the name.
        reached = f" (which {via} imports from there)" if via else ""
        super().__init__(
            f"{path} does not parse as {_PARSER}, so {shown(name)}{reached} cannot be read from it: "
            + " ".join(error.split())
        )
