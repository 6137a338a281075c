"""Review quality: the labelled corpus (bench/corpus/functions.toml) through a real gateway.

The gateway runs as its own process (`python -m gateway`) with whatever provider the environment
configures (`LLM_PROVIDER`, the keys and models of the README); with `LLM_PROVIDER=local` (the
default) and no `LOCAL_LLM_BASE_URL`, model_host is started too, with the bundled model. Each
function of the corpus is sent to `POST /analyze`, one at a time.

Figures: recall (a defect counts as named when a suggestion matches one of its `naming`
patterns) per category, for the defects a linter finds and for the logic ones, and overall; the
junk rate (suggestions judged junk by `junk_reason`, over all suggestions); how many suggestions
came from the model (not from the gateway's checks, run here too to tell them apart) and how
many of those named a defect; latency p50/p95 of one review.

Options: --limit=N (the first N functions), --category=NAME (functions with a defect of that
category), --show (print every review, the model's suggestions marked), --closed-list (instead of
reviews: the small-model experiment, see `closed_list`), --clean (precision instead: every
function of the clean corpus, `bench review_precision`, which reads the other options). The
gateway's review cache is in memory and starts empty, so every review is made afresh.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
import tomllib
from collections import defaultdict
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.checks import RuffChecker
from tests.support.servers import ServiceProcess, service_process

CORPUS = Path(__file__).resolve().parent / "corpus" / "functions.toml"
# The latency target is for a function of about 40 lines.
LONG_LINES = 35
CATEGORIES = (
    "security",
    "wrong-result",
    "off-by-one",
    "empty-input",
    "resource-leak",
    "error-handling",
    "async-blocking",
    "performance",
    "api-misuse",
    "style",
)


@dataclass(frozen=True)
class Defect:
    category: str
    linter: bool
    naming: tuple[re.Pattern[str], ...]

    def named_by(self, suggestions: list[str]) -> bool:
        return any(p.search(s) for p in self.naming for s in suggestions)


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    defects: tuple[Defect, ...]


def load_corpus(path: Path = CORPUS) -> list[Case]:
    """The corpus; ValueError naming the case when a label is malformed."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    cases: list[Case] = []
    for raw in data["case"]:
        defects = []
        for defect in raw.get("defect", []):
            if defect["category"] not in CATEGORIES:
                raise ValueError(f"{raw['id']}: unknown category {defect['category']!r}")
            patterns = tuple(re.compile(p, re.IGNORECASE) for p in defect["naming"])
            defects.append(Defect(defect["category"], bool(defect["linter"]), patterns))
        if not defects:
            raise ValueError(f"{raw['id']}: no defect labelled")
        cases.append(Case(raw["id"], raw["code"].strip("\n") + "\n", tuple(defects)))
    return cases


_IDENTIFIER_ONLY = re.compile(r"^\S+$")
_CODE_LIKE = re.compile(r"^\s*(def |return |class |import |from |@|\w+\s*=[^=]|\w+\(.*\)\s*$)")
_WORD = re.compile(r"[A-Za-z]{2,}")
_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def junk_reason(suggestion: str, code: str) -> str:
    """Why a suggestion is junk for `code`, or "" when it is an actionable sentence.

    The bench's own judge, kept apart from the gateway's filter so the figure is not the filter
    grading itself: an identifier or code fragment, fewer than four words, a restatement of the
    code, or a request for what the code already has (a docstring, type hints).
    """
    text = suggestion.strip()
    if _IDENTIFIER_ONLY.match(text):
        return "identifier"
    if _CODE_LIKE.match(text):
        return "code fragment"
    if len(_WORD.findall(text)) < 4:
        return "fewer than four words"
    folded = " ".join(text.lower().split()).rstrip(".")
    if folded and folded in " ".join(code.lower().split()):
        return "copied from the code"
    tree = _parse(code)
    if tree is not None:
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        lower = text.lower()
        asks_docstring = "docstring" in lower and re.search(
            r"\badd\b|missing|lacks|no docstring|write", lower
        )
        documented = [n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED)]
        if functions and asks_docstring and all(ast.get_docstring(n) for n in documented):
            return "asks for a docstring the code has"
        if functions and re.search(r"type hints?|annotat", lower) and all(_annotated(f) for f in functions):
            return "asks for type hints the code has"
    return ""


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _annotated(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    every = [a for a in every if a.arg not in {"self", "cls"}]
    return function.returns is not None and all(a.annotation is not None for a in every)


@dataclass
class Result:
    case: Case
    suggestions: list[str]
    from_model: list[str]
    seconds: float


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: list[Result]) -> None:
    """Print recall per category, per kind (linter / logic) and overall, junk and latency."""
    named: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        for defect in result.case.defects:
            hit = defect.named_by(result.suggestions)
            named[defect.category].append(hit)
            named["linter" if defect.linter else "logic"].append(hit)
            named["overall"].append(hit)
    print(f"{'recall':<16} {'named':>5} / {'all':<4}")
    for key in [*CATEGORIES, "linter", "logic", "overall"]:
        hits = named.get(key)
        if hits:
            print(f"  {key:<14} {sum(hits):>5} / {len(hits):<4} {100 * sum(hits) / len(hits):5.1f} %")
    total = [s for r in results for s in r.suggestions]
    junk = [
        (r.case.id, s, why) for r in results for s in r.suggestions if (why := junk_reason(s, r.case.code))
    ]
    model = [s for r in results for s in r.from_model]
    useful = sum(1 for r in results for s in r.from_model if any(d.named_by([s]) for d in r.case.defects))
    print(f"suggestions      {len(total)} ({len(model)} from the model, {useful} of them naming a defect)")
    rate = 100 * len(junk) / len(total) if total else 0.0
    print(f"junk             {len(junk)} ({rate:.1f} %)")
    for case_id, text, why in junk:
        print(f"  junk in {case_id}: {text!r} ({why})")
    long = [r.seconds for r in results if len(r.case.code.splitlines()) >= LONG_LINES]
    if long:
        print(f"latency, {LONG_LINES}+ lines p50 {_percentile(long, 0.5):.2f} s   ({len(long)} functions)")
    seconds = [r.seconds for r in results]
    print(
        f"latency          p50 {_percentile(seconds, 0.5):.2f} s   p95 {_percentile(seconds, 0.95):.2f} s"
        f"   ({len(seconds)} reviews, one at a time)",
        flush=True,
    )


def parse_options(argv: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for arg in argv:
        name, _, value = arg.removeprefix("--").partition("=")
        if name == "clean":
            # Everything else is review_precision's to read.
            return {"clean": ""}
        if name not in {"limit", "category", "show", "closed-list"}:
            raise SystemExit(
                f"unknown option {arg!r}; use --limit=N --category=NAME --show --closed-list, "
                "or --clean for precision on the clean corpus"
            )
        options[name] = value
    if options.get("category", CATEGORIES[0]) not in CATEGORIES:
        raise SystemExit(f"unknown category; one of {', '.join(CATEGORIES)}")
    return options


def selected(cases: list[Case], options: dict[str, str]) -> list[Case]:
    if "category" in options:
        cases = [c for c in cases if any(d.category == options["category"] for d in c.defects)]
    if options.get("limit"):
        cases = cases[: int(options["limit"])]
    return cases


async def _review_all(url: str, cases: list[Case], show: bool) -> list[Result]:
    checker = RuffChecker()
    results: list[Result] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        for case in cases:
            started = time.perf_counter()
            response = await client.post("/analyze", json={"function_code": case.code})
            seconds = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"{case.id}: HTTP {response.status_code}: {response.text[:300]}")
            suggestions: list[str] = response.json()["suggestions"]
            checks = {s.text for s in await checker.check(case.code)}
            from_model = [s for s in suggestions if s not in checks]
            results.append(Result(case, suggestions, from_model, seconds))
            if show:
                print(f"-- {case.id} ({seconds:.2f} s)")
                for s in suggestions:
                    print(f"   {'model' if s in from_model else 'check'}: {s}")
    return results


def _gateway_env(local_url: str | None) -> dict[str, str]:
    env = {"GATEWAY_HOST": "127.0.0.1", "NATS_URL": "", "LOG_LEVEL": "WARNING", "LOCAL_LLM_SSH_HOST": ""}
    if local_url is not None:
        env["LOCAL_LLM_BASE_URL"] = local_url
    return env


def provider_described() -> str:
    """The provider the environment configures, as `start_gateway` will run it."""
    provider = os.environ.get("LLM_PROVIDER", "local")
    starts = provider == "local" and not os.environ.get("LOCAL_LLM_BASE_URL")
    return f"provider {provider}{' (model_host with the bundled model, started here)' if starts else ''}"


def start_gateway(
    stack: ExitStack, logs: Path, env: Mapping[str, str] | None = None
) -> tuple[ServiceProcess, str | None]:
    """`python -m gateway` with the provider the environment configures (`LLM_PROVIDER`, the keys
    and models of the README), and `env` on top; stopped when `stack` closes.

    With `LLM_PROVIDER=local` (the default) and no `LOCAL_LLM_BASE_URL`, model_host is started
    first with the bundled model; its base URL is returned beside the gateway (else None).
    Raises RuntimeError when a service does not become healthy.
    """
    provider = os.environ.get("LLM_PROVIDER", "local")
    local_url: str | None = None
    if provider == "local" and not os.environ.get("LOCAL_LLM_BASE_URL"):
        model_host = stack.enter_context(
            service_process(
                "model_host", {"LOG_LEVEL": "WARNING"}, logs, port_variable="MODEL_HOST_PORT", timeout=300
            )
        )
        local_url = model_host.url + "/v1"
    gateway = stack.enter_context(
        service_process(
            "gateway", {**_gateway_env(local_url), **(env or {})}, logs, port_variable="GATEWAY_PORT"
        )
    )
    return gateway, local_url


def main(argv: list[str]) -> None:
    options = parse_options(argv)
    if "clean" in options:
        # Precision on the clean corpus: its own bench, reachable from here too (issue #18).
        # Imported here: review_precision imports this module.
        from bench import review_precision

        review_precision.main([a for a in argv if not a.startswith("--clean")])
        return
    cases = selected(load_corpus(), options)
    provider = os.environ.get("LLM_PROVIDER", "local")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; {provider_described()}; "
        f"{len(cases)} functions, {sum(len(c.defects) for c in cases)} defects",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-review-") as logs, ExitStack() as stack:
        gateway, local_url = start_gateway(stack, Path(logs))
        if "closed-list" in options:
            if local_url is None and provider == "local":
                local_url = os.environ["LOCAL_LLM_BASE_URL"]
            if local_url is None:
                raise SystemExit("--closed-list asks the local model: run it with LLM_PROVIDER=local")
            closed_list(local_url, cases)
            return
        results = asyncio.run(_review_all(gateway.url, cases, "show" in options))
    report(results)


# The closed list tried for small models: each kind a fixed sentence that names it.
KINDS = {
    "empty-input": "Handle an empty input: this fails (division by zero or IndexError) when it is empty.",
    "infinite-loop": "The loop may never end: make sure its condition changes on every pass (infinite loop).",
    "off-by-one": "Check the bounds for an off-by-one error: the first or last item may be skipped.",
    "resource-leak": "Close the resource in every case: use a with statement (context manager).",
    "blocking-async": "This blocks the event loop: await an async call or use asyncio.to_thread.",
    "error-handling": "Handle the errors this can raise (missing keys, invalid input) with a clear message.",
    "performance": "Avoid quadratic work here: use a set, str.join or a single pass.",
    "none": "",
}
_CLOSED_SYSTEM = (
    "You are a Python code reviewer. Read the function and pick the kinds of defect it has, from this "
    f'list only: {", ".join(KINDS)}. Pick "none" when it has none of them. '
    'Answer in JSON: {"defects": [...]}.'
)
_CLOSED_SCHEMA = {
    "type": "object",
    "properties": {
        "defects": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}, "maxItems": 2}
    },
    "required": ["defects"],
    "additionalProperties": False,
}


def closed_list(base_url: str, cases: list[Case]) -> None:
    """The small-model experiment: pick kinds from KINDS under the grammar; count right and wrong picks.

    A pick is right when its sentence names one of the function's labelled defects; a wrong pick
    would be a suggestion that contradicts the code.
    """
    with httpx.Client(base_url=base_url, timeout=600) as client:
        model = client.get("/models").json()["data"][0]["id"]
        right = wrong = 0
        seconds: list[float] = []
        for case in cases:
            body = {
                "model": model,
                "messages": [
                    {"role": "system", "content": _CLOSED_SYSTEM},
                    {"role": "user", "content": case.code},
                ],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "defects", "strict": True, "schema": _CLOSED_SCHEMA},
                },
                "temperature": 0,
                "max_tokens": 30,
            }
            started = time.perf_counter()
            answer = client.post("/chat/completions", json=body).json()
            seconds.append(time.perf_counter() - started)
            picks = set(json.loads(answer["choices"][0]["message"]["content"])["defects"])
            for sentence in (KINDS[kind] for kind in picks if KINDS.get(kind)):
                if any(d.named_by([sentence]) for d in case.defects):
                    right += 1
                else:
                    wrong += 1
    print(
        f"closed list ({model}): {right + wrong} picks, {right} right, {wrong} wrong; "
        f"p50 {_percentile(seconds, 0.5):.2f} s a function",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
