"""Review precision (issue #18): every function of the clean corpus, and how much of what is said is wrong.

The clean corpus (bench/corpus/clean/, see its README) holds modules of mature libraries that pass
their authors' own ruff configuration. Each of their functions and methods is reviewed in two
ways, through real services started as processes:

- `function`: its source sent to the gateway's `POST /analyze`, cut out of its module as the
  analyzer cuts it (analyzer.analysis.source_for_review: whole lines, a method dedented);
- `repository`: each library folder served as a GitHub repository by the fake GitHub of the
  tests, a real nats-server, `python -m fetcher` and `python -m analyzer` in front of the same
  gateway; `POST /analyze/start`, then `POST /analyze/function` for each function by its name.

The gateway runs with the provider the environment configures, as `bench review` runs it
(model_host with the bundled model for `LLM_PROVIDER=local`), with its review cache off, so no
review is served from another. Every suggestion is judged by bench/corpus/clean/verdicts.toml:
wrong, pedantic, fair, or unlabelled (printed, so new kinds of suggestions get labelled).

Figures per mode: functions, suggestions per function, functions with at least one suggestion,
suggestions by rule (top 15) and by verdict, a second suggestion on one concern counted as wrong
(a duplicate), errors, and time (setup, all reviews, p50/p95 of one). Goal of issue #18: no wrong
finding, at most 0.3 suggestions per function.

Usage: python -m bench review_precision [--mode=function|repository|both] [--show] [--json=FILE]
[--limit=N (first N functions of each library)] [--library=FOLDER]; also `python -m bench review --clean`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from analyzer.analysis import source_for_review
from analyzer.locate import SnapshotIndex
from analyzer.settings import Settings as AnalyzerSettings
from bench._clean_corpus import (
    KINDS,
    UNLABELLED,
    CleanFunction,
    Judged,
    Library,
    Verdicts,
    functions_of,
    load_libraries,
)
from bench.review import provider_described, start_gateway
from tests.support.fake_github import FakeGitHub, files_from_folder
from tests.support.nats import running_nats_server
from tests.support.servers import ServiceProcess, service_process

MODES = ("function", "repository")
# What the analyzer sends of a function at most (ANALYZER_SOURCE_MAX_CHARS), as it sends it.
SOURCE_MAX_CHARS: int = AnalyzerSettings.model_fields["analyzer_source_max_chars"].default
GOAL_PER_FUNCTION = 0.3
TOP_RULES = 15
EXAMPLES = 10
# The gateway keeps no review: each mode's reviews are made afresh, never served from the other's.
GATEWAY_ENV = {"REVIEW_CACHE_SIZE": "0"}
READY_TIMEOUT_S = 120.0
VERDICTS_NAME = "bench/corpus/clean/verdicts.toml"


@dataclass
class Options:
    modes: tuple[str, ...] = MODES
    show: bool = False
    json: Path | None = None
    limit: int | None = None
    library: str | None = None


def parse(argv: list[str]) -> Options:
    """The options; SystemExit naming the option when one is unknown or malformed."""
    options = Options()
    for arg in argv:
        name, _, value = arg.removeprefix("--").partition("=")
        if name == "mode" and value in (*MODES, "both"):
            options.modes = MODES if value == "both" else (value,)
        elif name == "show":
            options.show = True
        elif name == "json" and value:
            options.json = Path(value)
        elif name == "limit" and value.isdigit() and int(value) > 0:
            options.limit = int(value)
        elif name == "library" and value:
            options.library = value
        else:
            raise SystemExit(
                f"unknown or malformed option {arg!r}; use --mode=function|repository|both --show "
                "--json=FILE --limit=N --library=FOLDER"
            )
    return options


@dataclass(frozen=True)
class Reviewed:
    """One function's review in one mode: its suggestions, or the error that stood for them."""

    function: CleanFunction
    suggestions: list[str]
    seconds: float
    error: str | None = None


@dataclass
class ModeRun:
    mode: str
    reviews: list[Reviewed] = field(default_factory=list)
    setup_seconds: float = 0.0
    review_seconds: float = 0.0


# -- the functions, as the analyzer cuts them ---------------------------------------------------


def selected(libraries: list[Library], options: Options) -> dict[str, list[CleanFunction]]:
    """Library folder -> its functions, after --library and --limit; SystemExit for an unknown library."""
    if options.library is not None and options.library not in {lib.folder for lib in libraries}:
        known = ", ".join(lib.folder for lib in libraries)
        raise SystemExit(f"no library {options.library!r} in the clean corpus; one of {known}")
    chosen: dict[str, list[CleanFunction]] = {}
    for library in libraries:
        if options.library in (None, library.folder):
            chosen[library.folder] = functions_of(library)[: options.limit]
    return chosen


def cut_out(library: Library, functions: list[CleanFunction]) -> dict[str, str]:
    """Dotted name -> the source `/analyze/function` would send for it (analyzer.analysis).

    Raises ValueError when a name does not resolve to the definition it was taken from, so a
    function is never reviewed in one mode and another function in the other.
    """
    index = SnapshotIndex(files_from_folder(library.path), library.repository)
    sources: dict[str, str] = {}
    for function in functions:
        found = index.find(function.name)
        if found.path != function.path:
            raise ValueError(f"{function.name} resolves to {found.path}, not {function.path}")
        sources[function.name], _ = source_for_review(found, SOURCE_MAX_CHARS)
    return sources


# -- the two modes ------------------------------------------------------------------------------


async def _post(
    client: httpx.AsyncClient, function: CleanFunction, url: str, body: dict[str, str]
) -> Reviewed:
    started = time.perf_counter()
    try:
        response = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        return Reviewed(function, [], time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return Reviewed(function, [], seconds, f"HTTP {response.status_code}: {response.text[:300]}")
    try:
        suggestions = response.json()["suggestions"]
        if not isinstance(suggestions, list) or not all(isinstance(s, str) for s in suggestions):
            raise TypeError("suggestions is not a list of strings")
    except (ValueError, KeyError, TypeError) as exc:
        return Reviewed(function, [], seconds, f"not {{'suggestions': [...]}}: {exc}: {response.text[:300]}")
    return Reviewed(function, suggestions, seconds)


async def review_functions(
    gateway_url: str, libraries: list[Library], chosen: dict[str, list[CleanFunction]]
) -> list[Reviewed]:
    """Mode `function`: each function's cut-out source to the gateway's POST /analyze, one at a time."""
    reviews: list[Reviewed] = []
    async with httpx.AsyncClient(base_url=gateway_url, timeout=600) as client:
        for library in libraries:
            functions = chosen.get(library.folder, [])
            sources = cut_out(library, functions)
            for function in functions:
                body = {"function_code": sources[function.name]}
                reviews.append(await _post(client, function, "/analyze", body))
    return reviews


@contextmanager
def repository_stack(folder: Path, gateway: ServiceProcess, libraries: list[Library]) -> Iterator[str]:
    """The fake GitHub serving each library folder as its repository, a nats-server, the fetcher
    and the analyzer in front of `gateway`; yields the analyzer's URL."""
    with ExitStack() as stack:
        github = stack.enter_context(FakeGitHub.running())
        for library in libraries:
            owner, name = library.repository.split("/")
            github.add_repo(owner, name, library.path)
        nats_url = stack.enter_context(running_nats_server(folder / "js"))
        common = {"NATS_URL": nats_url, "LOG_LEVEL": "WARNING"}
        analyzer = stack.enter_context(
            service_process(
                "analyzer",
                {**common, "GATEWAY_URL": f"{gateway.url}/v1", "GATEWAY_TIMEOUT_S": "600"},
                folder,
                port_variable="ANALYZER_PORT",
                timeout=120,
            )
        )
        # After the analyzer, which provisions the streams the fetcher checks.
        stack.enter_context(
            service_process(
                "fetcher",
                {**common, "GITHUB_API_URL": github.api_url},
                folder,
                port_variable="FETCHER_HEALTH_PORT",
                timeout=120,
            )
        )
        yield analyzer.url


async def _ready_job(client: httpx.AsyncClient, repository: str) -> str:
    """A job for `repository`, once the fetcher has stored it; RuntimeError if it fails or stalls."""
    response = await client.post("/analyze/start", json={"repo_url": f"https://github.com/{repository}"})
    response.raise_for_status()
    job_id: str = response.json()["job_id"]
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        job = (await client.get(f"/analyze/jobs/{job_id}")).json()
        if job["status"] == "ready":
            return job_id
        if job["status"] == "failed":
            raise RuntimeError(f"the job for {repository} failed: {job.get('error')}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the job for {repository} was not ready within {READY_TIMEOUT_S:.0f} s")


async def review_repositories(
    analyzer_url: str, libraries: list[Library], chosen: dict[str, list[CleanFunction]]
) -> tuple[list[Reviewed], float]:
    """Mode `repository`: a job per library, then POST /analyze/function per function, one at a
    time; and the seconds the jobs took to be ready (not counted in the reviews' time)."""
    reviews: list[Reviewed] = []
    fetching = 0.0
    async with httpx.AsyncClient(base_url=analyzer_url, timeout=600) as client:
        for library in libraries:
            functions = chosen.get(library.folder, [])
            if not functions:
                continue
            started = time.perf_counter()
            job_id = await _ready_job(client, library.repository)
            fetching += time.perf_counter() - started
            for function in functions:
                body = {"job_id": job_id, "function_name": function.name}
                reviews.append(await _post(client, function, "/analyze/function", body))
    return reviews, fetching


async def measure(
    options: Options, libraries: list[Library], chosen: dict[str, list[CleanFunction]]
) -> list[ModeRun]:
    """Start the gateway (and for repository mode the stack in front of it), review each mode's
    functions one at a time, stop everything. RuntimeError when a service does not start."""
    runs: list[ModeRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp, ExitStack() as stack:
        logs = Path(tmp)
        started = time.perf_counter()
        # Started in a thread: a start waits for /health, and this loop may serve a fake provider.
        gateway, _ = await asyncio.to_thread(start_gateway, stack, logs, GATEWAY_ENV)
        gateway_seconds = time.perf_counter() - started
        for mode in options.modes:
            run = ModeRun(mode)
            if mode == "function":
                run.setup_seconds = gateway_seconds
                started = time.perf_counter()
                run.reviews = await review_functions(gateway.url, libraries, chosen)
                run.review_seconds = time.perf_counter() - started
            else:
                started = time.perf_counter()
                with ExitStack() as services:
                    analyzer_url = await asyncio.to_thread(
                        services.enter_context, repository_stack(logs, gateway, libraries)
                    )
                    stack_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    run.reviews, fetching = await review_repositories(analyzer_url, libraries, chosen)
                    run.review_seconds = time.perf_counter() - started - fetching
                    run.setup_seconds = gateway_seconds + stack_seconds + fetching
            runs.append(run)
    return runs


# -- the figures --------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else 0.0


def figures(run: ModeRun, verdicts: Verdicts) -> tuple[dict[str, Any], list[Judged]]:
    """The figures of one mode (as written to --json: every rule, every unlabelled suggestion and
    error; the report prints the first), and every suggestion judged."""
    judged = [j for r in run.reviews for j in verdicts.judge(r.function.name, r.suggestions)]
    functions = len(run.reviews)
    kinds = Counter(j.kind for j in judged)
    by_rule: dict[str, Counter[str]] = {}
    for j in judged:
        by_rule.setdefault(j.rule, Counter())[j.kind] += 1
    ranked = sorted(by_rule.items(), key=lambda item: (-item[1].total(), item[0]))
    seconds = [r.seconds for r in run.reviews if r.error is None]
    unlabelled = [j for j in judged if j.kind == UNLABELLED]
    return {
        "mode": run.mode,
        "functions": functions,
        "suggestions": len(judged),
        "per_function": round(len(judged) / functions, 3) if functions else 0.0,
        "with_suggestions": sum(1 for r in run.reviews if r.suggestions),
        "verdicts": {kind: kinds.get(kind, 0) for kind in (*KINDS, UNLABELLED)},
        "duplicates": sum(1 for j in judged if j.duplicate_of is not None),
        "by_rule": {rule: dict(counts) | {"total": counts.total()} for rule, counts in ranked},
        "unlabelled": [{"function": j.function, "text": j.text} for j in unlabelled],
        "errors": [{"function": r.function.name, "error": r.error} for r in run.reviews if r.error],
        "setup_s": round(run.setup_seconds, 2),
        "reviews_s": round(run.review_seconds, 2),
        "p50_ms": round(1000 * _percentile(seconds, 0.5), 1),
        "p95_ms": round(1000 * _percentile(seconds, 0.95), 1),
    }, judged


def report(all_figures: list[dict[str, Any]]) -> None:
    """Print the figures of each mode, then the modes side by side."""
    for fig in all_figures:
        n = fig["functions"]
        v = fig["verdicts"]
        share = 100 * fig["with_suggestions"] / n if n else 0.0
        print(f"\n-- mode {fig['mode']}: {n} functions")
        print(
            f"suggestions        {fig['suggestions']} ({fig['per_function']:.2f} per function; "
            f"goal <= {GOAL_PER_FUNCTION})"
        )
        print(f"functions with >=1 {fig['with_suggestions']} ({share:.1f} %)")
        print(
            f"verdicts           wrong {v['wrong']} (of them {fig['duplicates']} duplicates; goal 0), "
            f"pedantic {v['pedantic']}, fair {v['fair']}, unlabelled {v[UNLABELLED]}"
        )
        header = f"by rule (top {TOP_RULES})"
        print(f"{header:<27}{'total':>5} {'wrong':>6} {'pedantic':>8} {'fair':>5} {UNLABELLED:>10}")
        for rule, counts in list(fig["by_rule"].items())[:TOP_RULES]:
            print(
                f"  {rule:<24} {counts['total']:>5} {counts.get('wrong', 0):>6} "
                f"{counts.get('pedantic', 0):>8} {counts.get('fair', 0):>5} {counts.get(UNLABELLED, 0):>10}"
            )
        if v[UNLABELLED]:
            print(f"unlabelled         {v[UNLABELLED]} (label them in {VERDICTS_NAME}); the first:")
            for example in fig["unlabelled"][:EXAMPLES]:
                print(f"  {example['function']}: {example['text']}")
        print(f"errors             {len(fig['errors'])}")
        for error in fig["errors"][:EXAMPLES]:
            print(f"  {error['function']}: {error['error']}")
        print(
            f"time               setup {fig['setup_s']:.1f} s, reviews {fig['reviews_s']:.1f} s "
            f"(one at a time; one review p50 {fig['p50_ms']:.0f} ms, p95 {fig['p95_ms']:.0f} ms)",
            flush=True,
        )
    if len(all_figures) > 1:
        print(f"\n{'':<26}" + "".join(f"{fig['mode']:>12}" for fig in all_figures))
        rows: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
            ("functions", lambda f: f["functions"]),
            ("suggestions per function", lambda f: f"{f['per_function']:.2f}"),
            ("functions with >=1", lambda f: f["with_suggestions"]),
            ("wrong", lambda f: f["verdicts"]["wrong"]),
            ("pedantic", lambda f: f["verdicts"]["pedantic"]),
            ("fair", lambda f: f["verdicts"]["fair"]),
            ("unlabelled", lambda f: f["verdicts"][UNLABELLED]),
            ("errors", lambda f: len(f["errors"])),
            ("review p50 ms", lambda f: f"{f['p50_ms']:.0f}"),
        ]
        for label, value in rows:
            print(f"{label:<26}" + "".join(f"{value(fig)!s:>12}" for fig in all_figures))


def show(mode: str, judged: list[Judged]) -> None:
    """Every suggestion of the mode with its verdict, by function."""
    print(f"\n-- every suggestion, mode {mode}")
    current = None
    for j in judged:
        if j.function != current:
            current = j.function
            print(f"{j.function}")
        print(f"  {j.kind:<10} {j.rule:<14} {j.text}   [{j.reason}]")


def main(argv: list[str]) -> None:
    options = parse(argv)
    libraries = load_libraries()
    verdicts = Verdicts.load()
    chosen = selected(libraries, options)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; {provider_described()}; modes {', '.join(options.modes)}; "
        f"{sum(len(f) for f in chosen.values())} functions of {len(chosen)} libraries",
        flush=True,
    )
    runs = asyncio.run(measure(options, libraries, chosen))
    results = [figures(run, verdicts) for run in runs]
    if options.show:
        for run, (_, judged) in zip(runs, results, strict=True):
            show(run.mode, judged)
    report([fig for fig, _ in results])
    if options.json is not None:
        document = {"machine": platform.machine(), "modes": {fig["mode"]: fig for fig, _ in results}}
        options.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {options.json}")
