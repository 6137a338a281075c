"""`python -m bench`: help prints and runs nothing; an unknown name is an error listing the names."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import bench
from bench.__main__ import main as bench_main
from tests.support.servers import ROOT

NAMES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The benchmark modules main() imports (each import would run one); none is run."""
    names: list[str] = []

    def record(name: str) -> object:
        names.append(name)
        raise AssertionError(f"{name} imported")

    monkeypatch.setattr("importlib.import_module", record)
    return names


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_benchmark_and_runs_none(
    flag: str, started: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_main([flag]) == 0
    out = capsys.readouterr().out
    assert "python -m bench NAME --help" in out
    listed = [line.split()[0] for line in out.split("benchmarks (* only when named):\n", 1)[1].splitlines()]
    assert listed == NAMES
    assert "  soak             * A bounded soak" in out
    assert "== bench" not in out
    assert started == []


def test_help_of_one_benchmark_prints_its_description_and_runs_nothing(
    started: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # After the options too, and with a value-like word that must not be taken for the option's value.
    assert bench_main(["soak", "--minutes", "1", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bench soak\n\nA bounded soak (issue #11)")
    assert "fetch" not in out.split("\n", 1)[0]
    assert started == []
    assert bench_main(["--help", "fetch", "logs"]) == 0
    out = capsys.readouterr().out
    assert "bench fetch\n\nFetch a stdlib-sized repository" in out
    assert "bench logs\n\nWhat one log line costs" in out
    assert started == []


@pytest.mark.parametrize("argv", [["nosuch"], ["nosuch", "--help"], ["fetch", "nosuch", "--runs=1"]])
def test_an_unknown_name_is_an_error_that_lists_the_names(
    argv: list[str], started: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"unknown benchmark(s): nosuch; available: {', '.join(NAMES)}\n"
    assert started == []


def test_the_command_prints_help_and_exits_2_on_an_unknown_name() -> None:
    """As a person runs it: `python -m bench --help` ends at once, printing the list."""
    shown = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shown.returncode, shown.stderr) == (0, "")
    assert "machine:" not in shown.stdout
    assert all(f"\n  {name} " in shown.stdout for name in NAMES)
    wrong = subprocess.run(
        [sys.executable, "-m", "bench", "nosuch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 2
    assert "unknown benchmark(s): nosuch; available: analyzer," in wrong.stderr
