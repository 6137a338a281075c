"""`codereview` console script entry point (also `python -m codereview`)."""

from __future__ import annotations

import sys

from codereview.commands import app
from codereview.errors import ExitCode


def main() -> None:
    """Run the command line; a bug ends with one line and exit code 4, never a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        sys.stderr.write(f"codereview: unexpected error, a bug in codereview: {type(exc).__name__}: {exc}\n")
        sys.exit(int(ExitCode.SERVICE))


if __name__ == "__main__":
    main()
