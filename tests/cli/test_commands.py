"""The command line without services: help, usage errors, local files that cannot be reviewed, no NATS.

Typer's CliRunner runs the app in this process; nothing here talks to a service that answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codereview.commands import app, describe
from codereview.errors import ExitCode
from codereview.local import MAX_FILE_BYTES, split_target
from jobs_contract import JobEvent, JobStatus
from tests.support.ports import free_port

runner = CliRunner()


@pytest.mark.parametrize("command", ["review", "functions", "code", "watch"])
def test_help_shows_an_example_for_each_command(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert f"codereview {command} " in result.output
    assert "Example" in result.output


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["review", "https://github.com/a/b"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["functions", "job", "--limit", "0"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["frobnicate"]).exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("def f(:\n    pass\n", ExitCode.USAGE, "{path}:1: does not parse: "),
        (
            "x = " + "(" * 300 + ")" * 300 + "\n",
            ExitCode.USAGE,
            "does not parse: too many nested parentheses",
        ),
        ("x = " + "-" * 100_000 + "1\n", ExitCode.USAGE, "{path} is nested too deeply to parse"),
        (b"def f():\n    return '\xff'\n", ExitCode.USAGE, "is not readable as Python source"),
        ("X = 1\n", ExitCode.NOT_FOUND, "no functions in {path}"),
    ],
)
def test_a_file_that_cannot_be_reviewed_says_why_in_one_line(
    tmp_path: Path, text: str | bytes, code: ExitCode, message: str
) -> None:
    path = tmp_path / "bad.py"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    # No gateway is asked: the port is closed, and the error is about the file.
    gateway = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["code", str(path), "--gateway-url", gateway])
    assert result.exit_code == code, result.output
    assert message.format(path=path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_files_names_and_huge_files(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["code", str(tmp_path / "nope.py")])
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "nope.py does not exist" in missing.stderr
    path = tmp_path / "mod.py"
    path.write_text("class Box:\n    def size(self):\n        return 1\n")
    wrong = runner.invoke(app, ["code", f"{path}:Box.sise", "--json"])
    assert wrong.exit_code == ExitCode.NOT_FOUND
    assert json.loads(wrong.stdout)["error"]["did_you_mean"] == ["Box.size"]
    huge = tmp_path / "huge.py"
    with huge.open("wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)
    too_big = runner.invoke(app, ["code", str(huge)])
    assert too_big.exit_code == ExitCode.USAGE
    assert f"over the {MAX_FILE_BYTES} bytes" in too_big.stderr


def test_a_target_splits_into_path_and_name(tmp_path: Path) -> None:
    assert split_target("a/b.py:Box.size") == (Path("a/b.py"), "Box.size")
    assert split_target("a/b.py") == (Path("a/b.py"), None)
    # A file whose name holds a colon is a file, not a name.
    odd = tmp_path / "x.py:y"
    odd.write_text("")
    assert split_target(str(odd)) == (odd, None)


def test_watch_without_nats_is_one_line_and_exit_4() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["watch", "--nats-url", url])
    assert result.exit_code == ExitCode.SERVICE
    assert result.stderr.strip() == (
        f"codereview: nats at {url}: cannot connect (nats: no servers available for connection); "
        "is the stack running (python3 dev.py up)? Or point --nats-url / NATS_URL at it"
    )
    bad_job = runner.invoke(app, ["watch", "--job", "a.*", "--nats-url", url])
    assert bad_job.exit_code == ExitCode.USAGE
    assert "'a.*' is not a job id" in bad_job.stderr


def test_an_event_is_one_line() -> None:
    event = JobEvent(
        job_id="j1",
        event="failed",
        status=JobStatus.FAILED,
        progress=0.5,
        files=3,
        error="octo/gone: it does not exist, or it is private",
        at=0.0,
    )
    clock, rest = describe(event).split("  ", 1)
    assert len(clock) == len("00:00:00")
    assert rest == "j1  failed     failed     50%  3 files  octo/gone: it does not exist, or it is private"


def test_without_the_cli_extra_the_script_says_how_to_install_it() -> None:
    # A plain `pip install codereview` (as in the images) lacks typer: one line, no traceback.
    code = "import sys; sys.modules['typer'] = None; from codereview.__main__ import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == ExitCode.USAGE
    assert "pip install 'codereview[cli]'" in done.stderr
    assert "Traceback" not in done.stderr
