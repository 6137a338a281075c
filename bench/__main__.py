"""Run every benchmark (the soak only when named), or those named.

    python -m bench [NAME ...] [--OPTION=VALUE ...]
    python -m bench --help          the benchmarks, one line each
    python -m bench NAME --help     what NAME measures and its options

Options go to every benchmark run; each reads its own. An unknown name is an error (exit 2).
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

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


HELP = ("-h", "--help")


def description(name: str) -> str:
    """The docstring of benchmark `name`, read from its source without importing it (an import
    may load a model or start nothing at all; help must be instant and do nothing)."""
    source = Path(bench.__path__[0], f"{name}.py").read_text(encoding="utf-8")
    return ast.get_docstring(ast.parse(source)) or f"bench {name} (no description)"


def overview(available: list[str]) -> str:
    """This command's usage and each benchmark's first line."""
    width = max(map(len, available))
    lines = [(__doc__ or "").strip(), "", "benchmarks (* only when named):"]
    for name in available:
        star = "*" if name in ONLY_BY_NAME else " "
        lines.append(f"  {name:<{width}} {star} {description(name).splitlines()[0]}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the benchmarks `argv` names (all but ONLY_BY_NAME when it names none), or print help.

    Returns the exit code: 0, or 2 when a name is no benchmark (the names are listed on stderr)."""
    available = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    wants_help = any(arg in HELP for arg in argv)
    argv = _joined([arg for arg in argv if arg not in HELP], available)
    named = [a for a in argv if not a.startswith("-")]
    unknown = sorted(set(named) - set(available))
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    if wants_help:
        print("\n\n".join(f"bench {name}\n\n{description(name)}" for name in named) or overview(available))
        return 0
    names = named or [n for n in available if n not in ONLY_BY_NAME]
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
