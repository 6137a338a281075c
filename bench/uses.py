"""analyzer.uses (what a function uses, as text for the model) on real code, without the model call.

Snapshots: the standard library (as `bench lookup` lays it out) and, one at a time, packages
installed beside this one (httpx, litestar, pydantic, faststream) as if each were a repository.
For a random sample of the functions of each, `uses_of` is timed once every file is parsed (the
target: p50 well under 20 ms), and also on a fresh index where the files it reads are parsed on
first touch (in this process; the server parses them in its workers). Printed: wall p50/p99/max,
the share of functions with any context, and the size of the text.

Options: --names=N (functions per snapshot, default 400), --seed=S (default 18).
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import sysconfig
import time
from pathlib import Path

from analyzer.locate import NameNotFound, SnapshotIndex, UnparsableSource, parse_files
from analyzer.uses import uses_of
from bench.lookup import dotted_names
from tests.analyzer.helpers import stdlib_files

PACKAGES = ("httpx", "litestar", "pydantic", "faststream")


def package_files(name: str) -> dict[str, bytes]:
    """An installed package's Python files, laid out as in its repository's root."""
    root = Path(sysconfig.get_paths()["purelib"]) / name
    return {
        path.relative_to(root.parent).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.py"))
    }


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms, "
        f"max {ordered[-1] * 1000:6.1f} ms"
    )


def run(label: str, files: dict[str, bytes], repo: str, count: int, rng: random.Random) -> None:
    population = [name for name, _ in dotted_names(files)]
    names = rng.sample(population, min(count, len(population)))
    size = sum(map(len, files.values()))
    print(
        f"\n{label}: {len(files)} files, {size / 1e6:.1f} MB, "
        f"{len(population)} functions, {len(names)} sampled"
    )
    for warm in (False, True):
        index = SnapshotIndex(files, repo)
        if warm:
            started = time.perf_counter()
            index.adopt(parse_files(index.unparsed()))
            print(f"  every file parsed first ({time.perf_counter() - started:.1f} s, not counted)")
        found = []
        for name in names:
            try:
                found.append(index.find(name))
            except (NameNotFound, UnparsableSource):
                continue
        samples: list[float] = []
        sizes: list[int] = []
        for function in found:
            started = time.perf_counter()
            text = uses_of(index, function)
            samples.append(time.perf_counter() - started)
            sizes.append(len(text))
        with_context = [s for s in sizes if s]
        print(
            f"  {'warm' if warm else 'cold'}: {summary(samples)} (n={len(samples)}); "
            f"context for {len(with_context)}/{len(sizes)}, "
            f"median {statistics.median(with_context) if with_context else 0:.0f} chars, "
            f"max {max(sizes)} chars"
        )
        if warm:
            slowest = sorted(zip(samples, found, strict=True), key=lambda pair: -pair[0])[:3]
            for seconds, function in slowest:
                print(f"    slowest: {seconds * 1000:6.1f} ms {function.qualified_name} ({function.path})")


def main(argv: list[str]) -> None:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    count = int(options.get("names", "400"))
    rng = random.Random(int(options.get("seed", "18")))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average at start {load}"
    )
    run("standard library", stdlib_files(), "python/cpython", count, rng)
    for package in PACKAGES:
        files = package_files(package)
        if files:
            run(package, files, f"owner/{package}", count, rng)


if __name__ == "__main__":
    main(sys.argv[1:])
