"""Bad settings and bad command lines stop the fetcher with a message that names the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from fetcher.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FETCHER_MAX_DELIVERIES", "0"),
        ("FETCHER_HEALTH_PORT", "70000"),
        ("FETCHER_MAX_MEMBERS", "many"),
        ("FETCHER_ACK_WAIT_S", "-1"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.lower()):
        Settings(_env_file=None)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example/api/v3")
    monkeypatch.setenv("FETCHER_MAX_FILE_BYTES", "1234")
    settings = Settings(_env_file=None)
    assert (settings.github_api_url, settings.fetcher_max_file_bytes) == ("https://ghe.example/api/v3", 1234)


@pytest.mark.parametrize("argv", [["serve"], ["asyncapi", "a.json", "b.json"]])
def test_unknown_arguments_print_the_usage(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fetcher", *argv], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "usage: python -m fetcher [asyncapi [FILE]]"
