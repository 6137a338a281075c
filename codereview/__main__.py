"""`codereview` console script entry point (also `python -m codereview`)."""

from __future__ import annotations

import sys

from codereview.errors import ExitCode
from servicekit.text import printable

# The command line's own libraries come with the `cli` extra; the services never install them.
MISSING_EXTRA = (
    "codereview: the command line needs the `cli` extra ({module} is not installed): "
    "pip install 'codereview[cli]' (or `python3 dev.py setup`, which installs it)\n"
)


def main() -> None:
    """Run the command line; a bug ends with one line and exit code 4, never a traceback."""
    try:
        from codereview.commands import app
    except ModuleNotFoundError as exc:
        if exc.name not in {"typer", "rich", "httpx", "click"}:
            raise
        sys.stderr.write(MISSING_EXTRA.format(module=exc.name))
        sys.exit(int(ExitCode.USAGE))
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        reason = printable(f"{type(exc).__name__}: {exc}")  # its message may quote what a service sent
        sys.stderr.write(f"codereview: unexpected error, a bug in codereview: {reason}\n")
        sys.exit(int(ExitCode.SERVICE))


if __name__ == "__main__":
    main()
