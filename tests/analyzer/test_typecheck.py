"""The type check of a whole snapshot with the real ty: what it finds, what it may not read, its budget."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analyzer.settings import Settings
from analyzer.typecheck import TypeCheckBudget, TypeCheckFailed, TypeChecks, check_snapshot, run
from analyzer.typecheck.run import ty_binary
from review_contract import TypeFinding

BUDGET = TypeCheckBudget(timeout_s=60, memory_bytes=500_000_000, threads=2)

MODELS = b"""\
from dataclasses import dataclass


@dataclass
class User:
    name: str


def find_user(users: list[User], name: str) -> User | None:
    for user in users:
        if user.name == name:
            return user
    return None


def greet(user: User, greeting: str) -> str:
    return f"{greeting}, {user.name}"
"""
VIEWS = b"""\
from app.models import User, find_user, greet


def show(users: list[User], name: str) -> str:
    user = find_user(users, name)
    return user.name


def hello(users: list[User]) -> str:
    return greet(users[0])


def total(values: list[int]) -> int:
    return sum(valuez)


def polite(users: list[User]) -> str:
    return greet(users[0], "hi", salutation="dear")
"""
BUGGY = {"app/__init__.py": b"", "app/models.py": MODELS, "app/views.py": VIEWS}

CLEAN = {
    "app/__init__.py": b"",
    "app/models.py": MODELS,
    "app/views.py": b"""\
import os
from collections.abc import Iterable

from app.models import User, find_user, greet


def show(users: list[User], name: str) -> str:
    user = find_user(users, name)
    if user is None:
        return "nobody"
    return user.name


def hello(users: list[User]) -> str:
    return greet(users[0], greeting="hello")


def home() -> str:
    return os.environ.get("HOME", "/")


class Counter:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def add(self, words: Iterable[str]) -> None:
        for word in words:
            self.seen[word] = self.seen.get(word, 0) + 1
""",
}


def _rules(found: dict[str, list[TypeFinding]]) -> set[tuple[str, int, str]]:
    return {(path, finding.line, finding.rule) for path, findings in found.items() for finding in findings}


def _as_pyproject(ty_toml: str) -> str:
    """The same settings as `[tool.ty.*]` tables of a pyproject.toml."""
    return "\n".join(
        f"[tool.ty.{line[1:]}" if line.startswith("[") else line for line in ty_toml.splitlines()
    )


def _script(tmp_path: Path, body: str, name: str = "fake-ty") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (the container's init may reap late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary directories of the check under tmp_path/tmp, so a test can see none is left."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


async def test_the_three_cross_file_bugs_and_an_unknown_keyword_are_found(private_tmp: Path) -> None:
    found = await check_snapshot(BUGGY, BUDGET)

    assert _rules(found) == {
        ("app/views.py", 6, "missing-union-attribute"),
        ("app/views.py", 10, "missing-argument"),
        ("app/views.py", 14, "unresolved-reference"),
        ("app/views.py", 18, "unknown-argument"),
    }
    by_line = {finding.line: finding for finding in found["app/views.py"]}
    assert by_line[6].message == "Attribute `name` is not defined on `None` in union `User | None`"
    assert by_line[6].column == 12
    assert "`greeting`" in by_line[10].message
    assert "`greet`" in by_line[10].message
    assert by_line[14].message == "Name `valuez` used when not defined"
    assert "`salutation`" in by_line[18].message
    assert list(private_tmp.iterdir()) == []


async def test_clean_code_gives_nothing() -> None:
    assert await check_snapshot(CLEAN, BUDGET) == {}


async def test_a_mature_library_gives_nothing() -> None:
    """httpx as installed, as a repository would have it: its own imports unresolved (httpcore...)."""
    spec = importlib.util.find_spec("httpx")
    assert spec is not None
    assert spec.submodule_search_locations
    package = Path(spec.submodule_search_locations[0])
    files = {
        f"httpx/{path.relative_to(package).as_posix()}": path.read_bytes() for path in package.rglob("*.py")
    }
    assert len(files) > 20

    assert await check_snapshot(files, BUDGET) == {}


async def test_unresolved_third_party_imports_give_nothing() -> None:
    files = {
        "client.py": b"""\
import requests
from numpy import array

try:
    import brotli
except ImportError:
    brotli = None


def fetch(url: str) -> object:
    response = requests.get(url, 1, 2, 3, 4, 5, nonsense=True)
    return response.json().missing.attribute


def numbers() -> object:
    return array()


def unpack(data: bytes) -> bytes:
    return brotli.decompress(data)
""",
    }
    assert await check_snapshot(files, BUDGET) == {}


async def test_silenced_lines_and_names_made_at_run_time_give_nothing() -> None:
    files = {
        "silenced.py": b"def f() -> int:\n    return undefined_a  # type: ignore[name-defined]\n",
        "dynamic.py": b"globals().update({'made': 1})\n\n\ndef g() -> int:\n    return made\n",
        "legacy.py": b"def h(x: object) -> bool:\n    return isinstance(x, unicode)\n",
    }
    assert await check_snapshot(files, BUDGET) == {}


async def test_the_repository_configuration_and_environment_change_nothing(
    tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its pyproject.toml and ty.toml are not written; none above the temporary directory, nor the
    analyzer's own environment (an active virtualenv that has httpx) is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    # `greet` as in the snapshot: a finding on a call of it is kept only for a name the snapshot defines.
    (outside / "planted.py").write_text("def greet(a: int) -> int:\n    return a\n")
    config = f"""\
[environment]
extra-paths = ["{outside}", "/etc"]
root = ["/"]
python = "{sys.prefix}"

[src]
root = "/"

[rules]
unresolved-reference = "ignore"
missing-argument = "ignore"
"""
    hostile = BUGGY | {
        "ty.toml": config.encode(),
        "pyproject.toml": _as_pyproject(config).encode(),
        "uses.py": b"import planted\nimport httpx\n\n\ndef f(response: httpx.Response) -> object:\n"
        b"    planted.greet()\n    request = response.next_request\n    return request.url\n",
    }
    (private_tmp / "ty.toml").write_text(config)
    (private_tmp / "pyproject.toml").write_text(_as_pyproject(config))
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.setenv("TY_CONFIG_FILE", str(private_tmp / "ty.toml"))
    monkeypatch.setenv("PYTHONPATH", str(outside))

    found = await check_snapshot(hostile, BUDGET)

    assert _rules(found) == _rules(await check_snapshot(BUGGY, BUDGET))
    assert sorted(path.name for path in private_tmp.iterdir()) == ["pyproject.toml", "ty.toml"]


@pytest.mark.parametrize(
    "path",
    ["../escape.py", "app/../../escape.py", "/etc/evil.py", "app/./x.py", "a\0b.py", "a//b.py", "a\\b.py"],
)
async def test_a_path_outside_the_snapshot_is_refused(path: str, private_tmp: Path) -> None:
    with pytest.raises(TypeCheckFailed, match="refused a path"):
        await check_snapshot(BUGGY | {path: b"x = 1\n"}, BUDGET)
    assert list(private_tmp.iterdir()) == []


async def test_a_file_where_a_folder_must_be_fails_the_check(private_tmp: Path) -> None:
    with pytest.raises(TypeCheckFailed, match="could not write the snapshot"):
        await check_snapshot({"pkg.py": b"", "pkg.py/inner.py": b""}, BUDGET)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.alone
async def test_the_event_loop_keeps_turning_during_a_large_check() -> None:
    """2,000 files written, checked and judged: the loop never waits long (all of it is in threads
    or in ty's process)."""
    body = b"def f(x: int) -> int:\n    return undefined_name\n" * 20
    files = {f"pkg{number // 100}/m{number}.py": body for number in range(2_000)}
    gaps: list[float] = []

    async def ticking() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(ticking())
    try:
        found = await check_snapshot(files, BUDGET)
    finally:
        ticker.cancel()
    assert sum(len(findings) for findings in found.values()) == 40_000
    assert max(gaps) < 0.5


async def test_a_flood_of_findings_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "MAX_FINDINGS", 100)
    files = {"flood.py": b"def f() -> None:\n" + b"    undefined_name\n" * 101}
    with pytest.raises(TypeCheckFailed, match="more than 100 findings"):
        await check_snapshot(files, BUDGET)


async def test_a_snapshot_without_python_files_is_not_checked() -> None:
    assert await check_snapshot({"README.md": b"# hi", "ty.toml": b"[rules]\n"}, BUDGET) == {}


@pytest.mark.alone
async def test_past_the_timeout_the_process_group_is_killed(tmp_path: Path, private_tmp: Path) -> None:
    pids = tmp_path / "pids"
    slow = _script(tmp_path, f"echo $$ > {pids}\nsleep 60 &\necho $! >> {pids}\nwait\n")
    budget = TypeCheckBudget(timeout_s=1.0, memory_bytes=500_000_000)

    descriptors = len(list(Path("/proc/self/fd").iterdir()))
    started = time.monotonic()
    with pytest.raises(TypeCheckFailed, match="ANALYZER_TYPECHECK_TIMEOUT_S") as failed:
        await check_snapshot(BUGGY, budget, ty=slow)

    assert time.monotonic() - started < 10
    # Its pipes are closed too (a cancelled read once left stdout open until garbage collection).
    assert len(list(Path("/proc/self/fd").iterdir())) == descriptors
    assert "within 1 s" in failed.value.reason
    launched = [int(pid) for pid in pids.read_text().split()]
    assert len(launched) == 2
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in launched) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert all(_gone(pid) for pid in launched)
    assert list(private_tmp.iterdir()) == []


async def test_the_real_ty_past_a_tiny_timeout() -> None:
    files = {f"pkg/m{i}.py": b"def f(x: int) -> int:\n    return x\n" * 200 for i in range(300)}
    with pytest.raises(TypeCheckFailed, match="ANALYZER_TYPECHECK_TIMEOUT_S"):
        await check_snapshot(files, TypeCheckBudget(timeout_s=0.05, memory_bytes=500_000_000))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("echo 'thread main panicked' >&2\nexit 3\n", "ty exited with status 3: thread main panicked"),
        ("echo 'this is not json'\n", "not its JSON report"),
        ("echo '[{\"check_name\": 1}]'\n", "not its JSON report"),
        ("echo '\x1b[31mred\x1b[0m' >&2\nexit 2\n", "ty exited with status 2: red"),
        ("kill -TERM $$\n", "ty exited with status -15"),
        (
            "kill -SEGV $$\n",
            "ran out of memory (or crashed) on 3 files alone (app/__init__.py, app/models.py",
        ),
    ],
)
async def test_a_crash_or_garbage_fails_the_check(tmp_path: Path, body: str, reason: str) -> None:
    with pytest.raises(TypeCheckFailed) as failed:
        await check_snapshot(BUGGY, BUDGET, ty=_script(tmp_path, body))
    assert reason in failed.value.reason


@pytest.mark.alone
async def test_a_flood_of_output_fails_the_check(tmp_path: Path) -> None:
    budget = TypeCheckBudget(timeout_s=30, memory_bytes=500_000_000, output_bytes=1_000_000)
    descriptors = len(list(Path("/proc/self/fd").iterdir()))
    started = time.monotonic()
    with pytest.raises(TypeCheckFailed, match="more than 1000000 bytes"):
        await check_snapshot(BUGGY, budget, ty=_script(tmp_path, "exec yes '[{}]'\n"))
    assert time.monotonic() - started < 10
    # Its pipes are closed too: the one it flooded, no longer read, once stayed open (and its
    # transport unclosed) until garbage collection.
    assert len(list(Path("/proc/self/fd").iterdir())) == descriptors


async def test_a_missing_binary_fails_the_check(tmp_path: Path) -> None:
    with pytest.raises(TypeCheckFailed, match="missing or not executable"):
        await check_snapshot(BUGGY, BUDGET, ty=str(tmp_path / "nowhere"))


async def test_over_the_memory_budget_ty_fails_cleanly() -> None:
    budget = TypeCheckBudget(timeout_s=60, memory_bytes=80_000_000)
    started = time.monotonic()
    with pytest.raises(TypeCheckFailed, match="ANALYZER_TYPECHECK_MEMORY_BYTES"):
        await check_snapshot(BUGGY, budget)
    assert time.monotonic() - started < 30


HUGE = b"def big():\n    pass\n\n\nX = [" + b"1, " * 3_000_000 + b"]\n"  # 9 MB on one line: ty takes 470 MB


async def test_a_file_too_costly_alone_is_set_aside_and_the_rest_is_checked() -> None:
    skipped: dict[str, str] = {}
    found = await check_snapshot(BUGGY | {"data/huge.py": HUGE}, BUDGET, skipped=skipped)

    assert {line for _, line, _ in _rules(found)} == {6, 10, 14, 18}
    assert list(skipped) == ["data/huge.py"]
    assert "ANALYZER_TYPECHECK_MEMORY_BYTES" in skipped["data/huge.py"]


async def test_a_review_of_a_file_set_aside_goes_on_without_types(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="analyzer.typecheck")
    checks = TypeChecks(BUDGET)
    try:
        assert await checks.findings("k", BUGGY | {"data/huge.py": HUGE}, "data/huge.py", wait_s=60) is None
        views = await checks.findings("k", BUGGY | {"data/huge.py": HUGE}, "app/views.py", wait_s=60)
    finally:
        await checks.aclose()
    assert views is not None
    assert len(views) == 4
    assert "set aside: data/huge.py" in caplog.text


async def test_chunks_sized_to_memory_still_resolve_across_files() -> None:
    """With the smallest memory budget, the files are checked in several runs; a bug in a call of a
    function defined in another run's file is still found."""
    budget = TypeCheckBudget(timeout_s=120, memory_bytes=200_000_000, threads=1)
    filler = b"".join(b"def f%d(x: int) -> int:\n    return x + %d\n\n\n" % (i, i) for i in range(4_000))
    files = {f"aaa/big{i}.py": filler for i in range(6)} | {
        "aaa/a_models.py": MODELS,
        "zzz/__init__.py": b"",
        "zzz/views.py": VIEWS.replace(b"from app.models", b"from aaa.a_models"),
    }
    assert budget.chunk_bytes < len(filler) * 6 < 2 * budget.chunk_bytes

    found = await check_snapshot(files, budget)

    assert {(path, line) for path, line, _ in _rules(found)} == {
        ("zzz/views.py", line) for line in (6, 10, 14, 18)
    }


async def test_settings_give_the_budget() -> None:
    settings = Settings(analyzer_typecheck_timeout_s=7, analyzer_typecheck_memory_bytes=300_000_000)
    budget = TypeCheckBudget.of(settings)
    assert (budget.timeout_s, budget.memory_bytes, budget.threads) == (7, 300_000_000, 2)


def _counting_ty(tmp_path: Path, delay_s: float = 0.0) -> tuple[str, Path]:
    """The real ty behind a script that notes each run (and may first wait)."""
    runs = tmp_path / "runs"
    script = _script(
        tmp_path, f'echo run >> {runs}\nsleep {delay_s}\nexec {ty_binary()} "$@"\n', "counting-ty"
    )
    return script, runs


async def test_concurrent_reviews_of_one_snapshot_start_one_check(tmp_path: Path) -> None:
    ty, runs = _counting_ty(tmp_path)
    checks = TypeChecks(BUDGET, ty=ty)
    try:
        results = await asyncio.gather(
            *(checks.findings("owner/repo@abc", BUGGY, "app/views.py", wait_s=60) for _ in range(5)),
            checks.findings("owner/repo@abc", BUGGY, "app/models.py", wait_s=60),
        )
    finally:
        await checks.aclose()

    assert runs.read_text().split() == ["run"]
    for views in results[:5]:
        assert views is not None
        assert {finding.line for finding in views} == {6, 10, 14, 18}
    assert results[5] == []


async def test_a_review_that_cannot_wait_goes_on_and_a_later_one_gets_the_findings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ty, runs = _counting_ty(tmp_path, delay_s=1.0)
    checks = TypeChecks(BUDGET, ty=ty)
    caplog.set_level(logging.INFO, logger="analyzer.typecheck")
    try:
        assert await checks.findings("k", BUGGY, "app/views.py", wait_s=0.05) is None
        later = await checks.findings("k", BUGGY, "app/views.py", wait_s=60)
    finally:
        await checks.aclose()

    assert later is not None
    assert len(later) == 4
    assert runs.read_text().split() == ["run"]
    assert "type check of k: 3 files, 4 findings" in caplog.text


async def test_a_failed_check_answers_none_and_is_not_run_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    crashing = _script(tmp_path, f"echo run >> {runs}\nexit 3\n")
    checks = TypeChecks(BUDGET, ty=crashing)
    try:
        assert await checks.findings("k", BUGGY, "app/views.py", wait_s=60) is None
        assert await checks.findings("k", BUGGY, "app/views.py", wait_s=60) is None
    finally:
        await checks.aclose()
    assert runs.read_text().split() == ["run"]
    assert "type check of k failed" in caplog.text
    assert "status 3" in caplog.text


async def test_closing_kills_the_running_checks(tmp_path: Path, private_tmp: Path) -> None:
    pids = tmp_path / "pids"
    slow = _script(tmp_path, f"echo $$ > {pids}\nexec sleep 60\n")
    checks = TypeChecks(BUDGET, ty=slow)
    checks.start("k", BUGGY)
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    pid = int(pids.read_text())

    await checks.aclose()

    assert _gone(pid)
    assert list(private_tmp.iterdir()) == []
    assert await checks.findings("k", BUGGY, "app/views.py", wait_s=1) is None


async def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    ty, runs = _counting_ty(tmp_path)
    checks = TypeChecks(BUDGET, entries=1, ty=ty)
    try:
        assert await checks.findings("a", BUGGY, "app/views.py", wait_s=60)
        assert await checks.findings("b", CLEAN, "app/views.py", wait_s=60) == []
        assert await checks.findings("a", BUGGY, "app/views.py", wait_s=60)
    finally:
        await checks.aclose()
    assert runs.read_text().split() == ["run", "run", "run"]


async def test_at_most_the_concurrency_checks_run_at_once(tmp_path: Path) -> None:
    running = tmp_path / "running"
    running.mkdir()
    most = tmp_path / "most"
    body = (
        f"touch {running}/$$\nls {running} | wc -l >> {most}\nsleep 0.3\nrm {running}/$$\n"
        f'exec {ty_binary()} "$@"\n'
    )
    checks = TypeChecks(BUDGET, concurrency=1, ty=_script(tmp_path, body))
    try:
        await asyncio.gather(*(checks.findings(key, BUGGY, "app/views.py", wait_s=60) for key in "abc"))
    finally:
        await checks.aclose()
    assert [int(count) for count in most.read_text().split()] == [1, 1, 1]


async def test_reviews_wait_only_until_wait_s_after_the_check_began(tmp_path: Path) -> None:
    # A large snapshot's check runs for a while: the reviews of its first seconds wait for it,
    # later ones go on at once instead of each waiting `wait_s` again.
    ty, _ = _counting_ty(tmp_path, delay_s=3.0)
    checks = TypeChecks(BUDGET, ty=ty)
    try:
        assert await checks.findings("k", BUGGY, "app/views.py", wait_s=0.3) is None
        # The window closed with the first call: the second answers without waiting at all
        # (its coroutine ends at its first step, never suspending).
        second = checks.findings("k", BUGGY, "app/views.py", wait_s=0.3)
        with pytest.raises(StopIteration) as ended:
            second.send(None)
        assert ended.value.value is None
        assert await checks.findings("k", BUGGY, "app/views.py", wait_s=60) is not None
    finally:
        await checks.aclose()


async def test_a_check_expected_to_outlast_the_wait_is_not_waited_for(tmp_path: Path) -> None:
    ty, _ = _counting_ty(tmp_path, delay_s=1.0)
    checks = TypeChecks(BUDGET, ty=ty)
    large = BUGGY | {"data/big.py": b"x = 1\n" * 1_000_000}  # 6 MB: expected to take ~2 s
    try:
        first = checks.findings("k", large, "app/views.py", wait_s=1.0)
        with pytest.raises(StopIteration) as ended:
            first.send(None)
        assert ended.value.value is None
    finally:
        await checks.aclose()
