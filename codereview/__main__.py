"""`codereview` console script entry point."""

from __future__ import annotations

import sys


def main() -> None:
    sys.exit("codereview: the command line is not built yet")


if __name__ == "__main__":
    main()
