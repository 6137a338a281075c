"""Function lookup (analyzer.locate) on a stdlib-sized snapshot, without the model call.

Figures: index build and first lookup on a fresh index (target: ready for the first lookup in
<= 300 ms), then later lookups of random function names, p50/p99 (target p99 <= 20 ms): cold
(the first lookup into each file parses it) and warm (every file already parsed).

Also public names that reach their definition through a package's imports (`json.JSONDecoder`
for `json.decoder.JSONDecoder`), which rank right after the direct matches of their tier.

Options: --names=N (how many random names, default 2000), --seed=S (default 6).
"""

from __future__ import annotations

import ast
import contextlib
import multiprocessing
import os
import platform
import random
import statistics
import sysconfig
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from analyzer.locate import NameNotFound, SnapshotIndex, UnparsableSource, parse_files

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SKIP = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files() -> dict[str, bytes]:
    """The standard library as a snapshot's files: path -> bytes, as CPython's repo lays it out."""
    return {
        "Lib/" + path.relative_to(STDLIB).as_posix(): path.read_bytes()
        for path in sorted(STDLIB.rglob("*.py"))
        if not SKIP & set(path.relative_to(STDLIB).parts)
    }


def dotted_names(files: dict[str, bytes]) -> list[tuple[str, str]]:
    """(dotted name, bare qualname) of every function in the files that parse."""
    names: list[tuple[str, str]] = []
    for path, data in files.items():
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            continue
        module = path.removeprefix("Lib/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        stack: list[tuple[str, ast.AST]] = [("", tree)]
        while stack:
            prefix, node = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    qualname = prefix + child.name
                    if not isinstance(child, ast.ClassDef):
                        names.append((f"{module}.{qualname}", qualname))
                    stack.append((qualname + ".", child))
                elif isinstance(child, ast.stmt):
                    stack.append((prefix, child))
    return names


def reexported_names(files: dict[str, bytes], population: list[tuple[str, str]]) -> list[str]:
    """`pkg.Name` and `pkg.Name.method` for the functions and classes a package `__init__.py`
    imports with `from .module import Name` or `from .module import *` (names in the module's
    literal `__all__`): names that resolve only through that import."""
    defined = {name for name, _ in population}
    members: dict[str, list[str]] = {}
    for name in defined:
        owner, _, member = name.rpartition(".")
        members.setdefault(owner, []).append(member)
    names: list[str] = []
    for path, data in files.items():
        if not path.endswith("/__init__.py"):
            continue
        package = path.removeprefix("Lib/").removesuffix("/__init__.py").replace("/", ".")
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if not (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module):
                continue
            listed = [(alias.name, alias.asname) for alias in node.names if alias.name != "*"]
            if any(alias.name == "*" for alias in node.names):
                module_path = f"{path.removesuffix('__init__.py')}{node.module.replace('.', '/')}.py"
                listed.extend((name, None) for name in literal_all(files.get(module_path, b"")))
            for name, asname in listed:
                target = f"{package}.{node.module}.{name}"
                public = f"{package}.{asname or name}"
                if name.startswith("_") or public in defined:
                    continue
                if target in defined:
                    names.append(public)
                names.extend(f"{public}.{member}" for member in members.get(target, ()))
    return sorted(set(names))


def literal_all(data: bytes) -> list[str]:
    """The names a module's literal `__all__ = [...]` lists."""
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            return [
                e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
    return []


def resolves(index: SnapshotIndex, name: str) -> bool:
    try:
        index.find(name)
    except NameNotFound:
        return False
    return True


def percentiles(samples: list[tuple[float, float]]) -> str:
    """Wall-clock p50/p99/max, and CPU-time p99: on a shared machine the two part ways."""
    wall = sorted(w for w, _ in samples)
    cpu = sorted(c for _, c in samples)

    def p99(ordered: list[float]) -> float:
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    return (
        f"p50 {statistics.median(wall) * 1000:.2f} ms, p99 {p99(wall) * 1000:.2f} ms, "
        f"max {wall[-1] * 1000:.1f} ms; cpu p99 {p99(cpu) * 1000:.2f} ms (n={len(samples)})"
    )


def timed(lookup: Callable[[str], object], names: list[str]) -> list[tuple[float, float]]:
    samples = []
    for name in names:
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(NameNotFound):
            lookup(name)
        samples.append((time.perf_counter() - started, time.process_time() - cpu))
    return samples


def first_lookup(files: dict[str, bytes], name: str) -> tuple[float, float, float]:
    """Wall time to build, wall time of the first lookup, and CPU time of both."""
    started, cpu = time.perf_counter(), time.process_time()
    index = SnapshotIndex(files, "python/cpython")
    built = time.perf_counter()
    with contextlib.suppress(NameNotFound):
        index.find(name)
    return built - started, time.perf_counter() - built, time.process_time() - cpu


def main(argv: list[str]) -> None:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    count = int(options.get("names", "2000"))
    seed = int(options.get("seed", "6"))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average at start {load}"
    )

    started = time.perf_counter()
    files = stdlib_files()
    size = sum(map(len, files.values()))
    print(
        f"snapshot: the standard library, {len(files)} files, {size / 1e6:.1f} MB "
        f"(read in {time.perf_counter() - started:.2f} s, not counted)"
    )

    print("\nfresh index each time: build + first lookup (target <= 300 ms)")
    for label, name in [
        ("exact name, big module", "Lib.email.message.Message.get_payload"),
        ("source-root name", "json.decoder.JSONDecoder.decode"),
        ("source-root name, 5,000-line module", "_pydecimal.Decimal.quantize"),
        ("suffix name (scans the bytes for it)", "JSONDecoder.decode"),
        ("bare function name", "urlsplit"),
        ("re-exported: from .decoder import", "json.JSONDecoder.decode"),
        ("re-exported: star import with __all__", "asyncio.Queue.put"),
        ("re-exported: import posixpath as path", "os.path.join"),
        ("name that does not exist (suggestions)", "json.decoder.JSONDecoder.decod"),
    ]:
        build, lookup, cpu = first_lookup(files, name)
        total = (build + lookup) * 1000
        print(
            f"  {label:40} {name:42} build {build * 1000:6.1f} ms + lookup {lookup * 1000:6.1f} ms"
            f" = {total:6.1f} ms (cpu {cpu * 1000:6.1f} ms)"
        )

    started = time.perf_counter()
    population = dotted_names(files)
    print(
        f"\n{len(population)} function names in the files that parse (collected in "
        f"{time.perf_counter() - started:.1f} s, not counted)"
    )
    rng = random.Random(seed)
    sample = rng.sample(population, min(count, len(population)))
    library = [pair for pair in population if "/test" not in pair[0] and ".test" not in pair[0]]
    library_sample = rng.sample(library, min(count, len(library)))

    for label, chosen in [("all code", sample), ("library code (no tests)", library_sample)]:
        index = SnapshotIndex(files, "python/cpython")
        dotted = [name for name, _ in chosen]
        cold = timed(index.find, dotted)
        warm = timed(index.find, dotted)
        bare = timed(index.find, [qualname for _, qualname in chosen])
        print(f"\nlater lookups, {label}, dotted names in random order (target p99 <= 20 ms)")
        print(f"  cold (first touch of a file parses it): {percentiles(cold)}")
        print(f"  warm (files parsed):                    {percentiles(warm)}")
        print(f"  bare qualnames ('Class.method'), warm:  {percentiles(bare)}")

    # Public names that reach their definition through a package's imports (`json.JSONDecoder`).
    public = reexported_names(files, population)
    public_sample = rng.sample(public, min(count, len(public)))
    index = SnapshotIndex(files, "python/cpython")
    cold = timed(index.find, public_sample)
    warm = timed(index.find, public_sample)
    resolved = sum(1 for name in public_sample if resolves(index, name))
    print(
        f"\nlater lookups, {len(public_sample)} of {len(public)} public names re-exported by a package "
        f"__init__ ('json.JSONDecoder.decode', 'asyncio.Queue.put'), random order; {resolved} resolve"
    )
    print(f"  cold (first touch of a file parses it): {percentiles(cold)}")
    print(f"  warm (files parsed):                    {percentiles(warm)}")

    # Warming every file away from the serving process, then adopting the tables.
    index = SnapshotIndex(files, "python/cpython")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(len, b"").result()  # the worker is up: count the work, not the start
        started = time.perf_counter()
        tables = pool.submit(parse_files, index.unparsed()).result()
        parsed = time.perf_counter()
    index.adopt(tables)
    adopted = time.perf_counter()
    print(
        f"\nwarm-up in a worker process: parse_files {parsed - started:.1f} s (wall, with the transfer), "
        f"adopt {(adopted - parsed) * 1000:.1f} ms"
    )
    after = timed(index.find, [name for name, _ in sample])
    print(f"  then lookups, all code:                 {percentiles(after)}")

    # What a cached index costs once every file has been parsed (the analyzer keeps indexes).
    tracemalloc.start()
    index = SnapshotIndex(files, "python/cpython")
    for name, _ in population:
        with contextlib.suppress(NameNotFound, UnparsableSource):
            index.find(name)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"\nmemory held by an index with every file parsed: {held / 1e6:.0f} MB "
        f"(the files themselves: {size / 1e6:.0f} MB, not counted)"
    )
