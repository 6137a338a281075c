"""Run the benchmarks in this package (all but ONLY_BY_NAME), or those named: `python -m bench [NAME ...]`."""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
import time

import bench

# Run only when named: the soak takes 15 minutes by default, longer than all the others together.
ONLY_BY_NAME = {"soak"}


def machine() -> str:
    cores = os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cores} cores, Python {platform.python_version()}"


def _joined(argv: list[str], available: list[str]) -> list[str]:
    """`--minutes 5` as `--minutes=5`: a value follows an option that has none, unless it names a bench."""
    joined: list[str] = []
    for arg in argv:
        after_bare_option = joined and joined[-1].startswith("--") and "=" not in joined[-1]
        if after_bare_option and not arg.startswith("-") and arg not in available:
            joined[-1] += "=" + arg
            continue
        joined.append(arg)
    return joined


def main(argv: list[str]) -> int:
    available = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    argv = _joined(argv, available)
    names = [a for a in argv if not a.startswith("-")] or [n for n in available if n not in ONLY_BY_NAME]
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    print(f"machine: {machine()}")
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== bench {name}", flush=True)
        started = time.perf_counter()
        module.main([a for a in argv if a.startswith("-")])
        print(f"== bench {name} took {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
