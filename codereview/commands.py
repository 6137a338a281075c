"""The `codereview` commands (Typer): review, functions, code, scan, watch.

Every command runs one coroutine; a CliError from anywhere below ends it with one line and the
exit code that says what happened (codereview.errors.ExitCode).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from codereview import local, output
from codereview.api import Analyzer, Gateway
from codereview.errors import CliError, ExitCode
from codereview.events import wait_for_job, watch
from codereview.scanning import FailOn, ScanOptions, run_scan
from jobs_contract import JobEvent, JobStatus

DEFAULT_ANALYZER_URL = "http://127.0.0.1:8000"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8001"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
# Without NATS, the job record is read this often while the repository is fetched.
POLL_S = 0.5

app = typer.Typer(
    name="codereview",
    help="Review Python functions with the codereview services: a GitHub repository's, or a local file's.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

AnalyzerUrl = Annotated[
    str,
    typer.Option("--analyzer-url", envvar="CODEREVIEW_ANALYZER_URL", help="The analyzer's base URL."),
]
GatewayUrl = Annotated[
    str,
    typer.Option("--gateway-url", envvar="CODEREVIEW_GATEWAY_URL", help="The gateway's base URL."),
]
NatsUrl = Annotated[
    str,
    typer.Option("--nats-url", envvar="NATS_URL", help="NATS, for job events (optional for review)."),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="CODEREVIEW_API_KEY",
        help="Sent as `Authorization: Bearer` to services that require a key (their CODEREVIEW_API_KEYS); "
        "prefer the variable: a command line is visible to other users.",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts (errors too).")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for one answer (a review included).")
]
FailOnSuggestions = Annotated[
    bool, typer.Option("--fail-on-suggestions", help="Exit with 1 when there is any suggestion.")
]


def _run(work: Coroutine[Any, Any, ExitCode | None], *, as_json: bool) -> None:
    try:
        code = asyncio.run(work)
    except CliError as failure:
        output.error(failure, as_json=as_json)
        raise typer.Exit(int(failure.code)) from None
    raise typer.Exit(int(code or ExitCode.OK))


def _verdict(found: bool, fail_on_suggestions: bool) -> ExitCode:
    return ExitCode.SUGGESTIONS if found and fail_on_suggestions else ExitCode.OK


# -- review -----------------------------------------------------------------------------------


@app.command(
    epilog="Example: [bold]codereview review https://github.com/psf/requests requests.utils.super_len[/]"
)
def review(
    repo_url: Annotated[str, typer.Argument(help="https://github.com/owner/repo (or /tree/<ref>).")],
    function_name: Annotated[str, typer.Argument(help="Dotted name: pkg.module.func, module.Class.method.")],
    analyzer_url: AnalyzerUrl = DEFAULT_ANALYZER_URL,
    api_key: ApiKey = None,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
    wait: Annotated[
        float, typer.Option("--wait", min=0.1, help="Seconds to wait for the repository to be fetched.")
    ] = 600.0,
    timeout: Timeout = 300.0,
    fail_on_suggestions: FailOnSuggestions = False,
    as_json: Json = False,
) -> None:
    """Fetch a repository and review one of its functions; prints the suggestions as a numbered list."""
    _run(
        _review(
            repo_url,
            function_name,
            analyzer_url,
            api_key,
            nats_url,
            wait,
            timeout,
            fail_on_suggestions,
            as_json,
        ),
        as_json=as_json,
    )


async def _review(
    repo_url: str,
    function_name: str,
    analyzer_url: str,
    api_key: str | None,
    nats_url: str,
    wait: float,
    timeout_s: float,
    fail_on_suggestions: bool,
    as_json: bool,
) -> ExitCode:
    async with Analyzer(analyzer_url, timeout_s=timeout_s, api_key=api_key) as analyzer:
        job_id = await analyzer.start(repo_url)
        with output.job_progress(f"fetching {repo_url}", enabled=not as_json) as bar:
            record, with_events = await wait_for_job(
                analyzer, job_id, nats_url=nats_url, on_update=bar.update, timeout_s=wait, poll_s=POLL_S
            )
        if record.status == JobStatus.FAILED:
            raise CliError(
                f"job {job_id} failed: {record.error}", ExitCode.SERVICE, service="fetcher", job_id=job_id
            )
        snapshot = f"{record.owner}/{record.repo}@{(record.commit_sha or '')[:12]}"
        if not as_json:
            output.line(f"{snapshot}: {record.files} Python files fetched (job {job_id})", err=True)
        try:
            found = await analyzer.review(job_id, function_name)
        except CliError as failure:
            if failure.code == ExitCode.NOT_FOUND and "did_you_mean" in failure.details:
                failure.message += (
                    f"; list the names with: codereview functions {job_id} {function_name.rsplit('.', 1)[-1]}"
                )
            failure.details["job_id"] = job_id
            raise
    if as_json:
        output.print_json(
            {
                "job_id": job_id,
                "repo": f"{record.owner}/{record.repo}",
                "commit_sha": record.commit_sha,
                "function_name": function_name,
                "suggestions": found,
                "progress_from": "nats" if with_events else "polling",
            }
        )
    else:
        output.suggestions(f"{function_name} in {snapshot}", found)
    return _verdict(bool(found), fail_on_suggestions)


# -- functions --------------------------------------------------------------------------------


@app.command(
    epilog="Examples: [bold]codereview functions 0b9c6f2d3f4e4a8a super_len[/], "
    "[bold]codereview functions 0b9c6f2d3f4e4a8a --prefix requests.utils. --all[/]"
)
def functions(
    job_id: Annotated[str, typer.Argument(help="A job id, as `review` or POST /analyze/start gave it.")],
    pattern: Annotated[str | None, typer.Argument(help="Only names holding this text (any case).")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only names starting with this.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Names per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The page after the one that gave it.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
    analyzer_url: AnalyzerUrl = DEFAULT_ANALYZER_URL,
    api_key: ApiKey = None,
    timeout: Timeout = 60.0,
    as_json: Json = False,
) -> None:
    """List the function names a job's repository offers for review, with file and line."""
    _run(
        _functions(job_id, pattern, prefix, limit, cursor, every, analyzer_url, api_key, timeout, as_json),
        as_json=as_json,
    )


async def _functions(
    job_id: str,
    pattern: str | None,
    prefix: str | None,
    limit: int,
    cursor: str | None,
    every: bool,
    analyzer_url: str,
    api_key: str | None,
    timeout_s: float,
    as_json: bool,
) -> ExitCode:
    params: dict[str, str | int] = {"limit": limit}
    if pattern:
        params["contains"] = pattern
    if prefix:
        params["prefix"] = prefix
    listed: list[dict[str, Any]] = []
    async with Analyzer(analyzer_url, timeout_s=timeout_s, api_key=api_key) as analyzer:
        while True:
            if cursor:
                params["cursor"] = cursor
            if not every:
                params["limit"] = limit - len(listed)
            page = await analyzer.functions(job_id, params)
            listed.extend(page["functions"])
            cursor = page.get("next_cursor")
            # A page may end early (the analyzer bounds the parsing one request does): go on
            # until the names asked for are there.
            if not cursor or (not every and len(listed) >= limit):
                break
    if as_json:
        output.print_json({**page, "functions": listed, "next_cursor": cursor})
        return ExitCode.OK
    width = max((len(entry["name"]) for entry in listed), default=0)
    for entry in listed:
        output.line(f"{entry['name']:<{width}}  {entry.get('path')}:{entry.get('line')}")
    if cursor:
        output.line(f"{len(listed)} names shown; more with --cursor {cursor} (or --all)", err=True)
    elif not listed:
        output.line(f"no function names match in job {job_id}", err=True)
    return ExitCode.OK


# -- scan -------------------------------------------------------------------------------------


@app.command(
    epilog="Examples: [bold]codereview scan https://github.com/psf/requests --sarif codereview.sarif[/], "
    "[bold]codereview scan https://github.com/owner/repo --pr 42 --fail-on error[/]"
)
def scan(
    repo_url: Annotated[str, typer.Argument(help="https://github.com/owner/repo (or /tree/<ref>).")],
    pull: Annotated[
        int | None,
        typer.Option("--pr", min=1, help="Only the functions whose lines pull request N adds or changes."),
    ] = None,
    paths: Annotated[
        list[str] | None,
        typer.Option("--path", help="Only files matching this glob (src/**/*.py); may be repeated."),
    ] = None,
    model: Annotated[
        bool, typer.Option("--model", help="Also ask the model about each function (else: checks only).")
    ] = False,
    max_functions: Annotated[
        int | None, typer.Option("--max-functions", min=0, help="Ask the model about at most N functions.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=0, help="Spend at most N tokens of the model.")
    ] = None,
    sarif: Annotated[
        Path | None,
        typer.Option("--sarif", help="Write the findings as SARIF 2.1.0 to FILE.", dir_okay=False),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option("--fail-on", help="Exit with 1 when a finding is this severe or more."),
    ] = FailOn.NEVER,
    analyzer_url: AnalyzerUrl = DEFAULT_ANALYZER_URL,
    api_key: ApiKey = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0.1, help="Seconds to wait for the fetch and the scan together.")
    ] = 3600.0,
    timeout: Timeout = 60.0,
    as_json: Json = False,
) -> None:
    """Review every function of a repository (or a pull request's changed ones) in one scan."""
    options = ScanOptions(
        repo_url=repo_url,
        pull=pull,
        paths=paths or None,
        mode="model" if model else "checks",
        max_functions=max_functions,
        max_tokens=max_tokens,
        sarif=sarif,
        fail_on=fail_on,
        wait_s=wait,
    )
    _run(_scan(options, analyzer_url, api_key, timeout, as_json), as_json=as_json)


async def _scan(
    options: ScanOptions, analyzer_url: str, api_key: str | None, timeout_s: float, as_json: bool
) -> ExitCode:
    async with Analyzer(analyzer_url, timeout_s=timeout_s, api_key=api_key) as analyzer:
        return await run_scan(analyzer, options, as_json=as_json)


# -- code -------------------------------------------------------------------------------------


@app.command(
    epilog="Examples: [bold]codereview code app/utils.py[/] (every function), "
    "[bold]codereview code app/utils.py:Parser.parse[/]"
)
def code(
    target: Annotated[str, typer.Argument(help="path/to/file.py, or path/to/file.py:func (Class.method).")],
    gateway_url: GatewayUrl = DEFAULT_GATEWAY_URL,
    api_key: ApiKey = None,
    timeout: Timeout = 300.0,
    fail_on_suggestions: FailOnSuggestions = False,
    as_json: Json = False,
) -> None:
    """Review a local file's functions through the gateway (no GitHub, no analyzer)."""
    _run(_code(target, gateway_url, api_key, timeout, fail_on_suggestions, as_json), as_json=as_json)


async def _code(
    target: str,
    gateway_url: str,
    api_key: str | None,
    timeout_s: float,
    fail_on_suggestions: bool,
    as_json: bool,
) -> ExitCode:
    path, name = local.split_target(target)
    text = local.read_source(path)
    chosen = [local.function_named(path, text, name)] if name else local.functions_in(path, text)
    if not chosen:
        raise CliError(f"no functions in {path}", ExitCode.NOT_FOUND)
    reviewed: list[tuple[local.LocalFunction, list[str]]] = []
    async with Gateway(gateway_url, timeout_s=timeout_s, api_key=api_key) as gateway:
        with output.count_progress(f"reviewing {path}", len(chosen), enabled=not as_json) as step:
            for function in chosen:
                # In its module, under the project's ruff configuration, where it can be.
                context = local.review_context(path, text, function)
                try:
                    found = (
                        await gateway.review_in_module(function.source, context)
                        if context is not None
                        else await gateway.analyze(function.source)
                    )
                    reviewed.append((function, found))
                except CliError as failure:
                    failure.message = f"{failure.message} (reviewing {function.name}, {path}:{function.line})"
                    raise
                step()
    if as_json:
        output.print_json(
            {
                "path": str(path),
                "functions": [
                    {"name": f.name, "line": f.line, "suggestions": found} for f, found in reviewed
                ],
            }
        )
    else:
        for function, found in reviewed:
            output.suggestions(f"{function.name} ({path}:{function.line})", found)
    return _verdict(any(found for _, found in reviewed), fail_on_suggestions)


# -- watch ------------------------------------------------------------------------------------


@app.command(
    name="watch",
    epilog="Examples: [bold]codereview watch[/], [bold]codereview watch --job 0b9c6f2d3f4e4a8a --json[/]",
)
def watch_command(
    job: Annotated[str | None, typer.Option("--job", help="Only this job's events.")] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after this many events.")] = None,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
    as_json: Json = False,
) -> None:
    """Print job events live (codereview.jobs.>) until Ctrl-C."""

    def ready(subject: str) -> None:
        # On stderr even with --json: a script waiting to publish knows it is subscribed.
        output.line(f"watching {subject} on {nats_url}; Ctrl-C stops", err=True)

    def show(subject: str, event: JobEvent | None) -> None:
        if as_json:
            shown = msgspec.to_builtins(event) if event is not None else {"not_a_job_event": True}
            output.print_json({"subject": subject, **shown})
        elif event is None:
            output.line(f"{time.strftime('%H:%M:%S')}  {subject}: not a job event")
        else:
            output.line(describe(event))

    try:
        _run(watch(nats_url, job, count=count, on_ready=ready, on_event=show), as_json=as_json)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.OK)) from None


def describe(event: JobEvent) -> str:
    """One line for a job event: time, job, event, status, progress, files, and the sha or the error."""
    parts = [
        time.strftime("%H:%M:%S", time.localtime(event.at)),
        event.job_id,
        f"{event.event:<9}",
        f"{event.status!s:<8}",
        f"{event.progress:4.0%}",
        f"{event.files} files",
    ]
    if event.commit_sha:
        parts.append(event.commit_sha[:12])
    if event.error:
        parts.append(event.error)
    return "  ".join(parts)
