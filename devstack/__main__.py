"""Start the whole local stack: `python -m devstack` (what `python3 dev.py up` runs)."""

from __future__ import annotations

import asyncio
import sys

from devstack.runner import StackError, run_stack


def main() -> int:
    try:
        return asyncio.run(run_stack())
    except StackError as error:
        print(f"\n[stack] {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


if __name__ == "__main__":
    sys.exit(main())
