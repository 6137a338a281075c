"""The type check of a stdlib-sized snapshot with ty (analyzer.typecheck), as the analyzer runs it.

The snapshot is the one `bench analyzer` reviews (CPython's Lib/, about 1,800 files and 31 MB),
checked with the budget of the default settings (ANALYZER_TYPECHECK_*). Figures: wall seconds,
ty's CPU seconds and peak RSS (the largest of its processes: the files are checked in chunks
sized to the memory budget), the findings kept per rule, and the load average, since ty runs at a
lower priority than everything else (target: 10 s and 500 MB on a 2-core machine).

Options: --threads=N, --memory-bytes=N (default: the settings'), --runs=N (default 1).
"""

from __future__ import annotations

import asyncio
import collections
import os
import resource
import time

from analyzer.settings import Settings
from analyzer.typecheck import TypeCheckBudget, check_snapshot
from tests.analyzer.helpers import stdlib_files


def _budget(argv: list[str]) -> tuple[TypeCheckBudget, int]:
    settings = Settings()
    values = {"threads": settings.analyzer_typecheck_threads, "memory-bytes": 0, "runs": 1}
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key in values:
            values[key] = int(value)
    budget = TypeCheckBudget(
        timeout_s=max(settings.analyzer_typecheck_timeout_s, 300.0),
        memory_bytes=values["memory-bytes"] or settings.analyzer_typecheck_memory_bytes,
        threads=values["threads"],
    )
    return budget, values["runs"]


async def _run(budget: TypeCheckBudget, runs: int) -> None:
    files = stdlib_files()
    size = sum(map(len, files.values()))
    print(
        f"snapshot: {len(files)} files, {size / 1e6:.1f} MB; ty: {budget.threads} threads, "
        f"RLIMIT_AS {budget.memory_bytes} bytes, chunks of {budget.chunk_bytes / 1e6:.1f} MB of source"
    )
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        found = await check_snapshot(files, budget)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        rules = collections.Counter(finding.rule for findings in found.values() for finding in findings)
        print(
            f"wall {wall:.1f} s, ty CPU {cpu:.1f} s, peak RSS {after.ru_maxrss / 1024:.0f} MB, "
            f"load {os.getloadavg()[0]:.1f}; {sum(rules.values())} findings in {len(found)} files: "
            + ", ".join(f"{rule} {count}" for rule, count in rules.most_common())
        )


def main(argv: list[str]) -> None:
    asyncio.run(_run(*_budget(argv)))
