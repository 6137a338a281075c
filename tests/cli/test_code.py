"""`codereview code`: a local file's functions reviewed by the real gateway (its provider a fake OpenAI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import BLANK, run_cli
from tests.support.fake_llm import FakeLLM, error_reply
from tests.support.servers import service_process

pytestmark = pytest.mark.slow

SOURCE = (
    "import functools\n\n\n"
    "def add(a, b):\n"
    "    return a + b\n\n\n"
    "class Box:\n"
    "    @functools.cache\n"
    "    def size(self):\n"
    "        def inner():\n"
    "            return 1\n"
    "        return inner()\n"
)
ADD = "def add(a, b):\n    return a + b\n"
SIZE = "@functools.cache\ndef size(self):\n    def inner():\n        return 1\n    return inner()\n"


def sent_code(llm: FakeLLM) -> list[str]:
    """The code of each review the gateway asked its provider for (the last user message)."""
    codes = []
    for request in llm.sent("/chat/completions"):
        user = [m["content"] for m in request.json()["messages"] if m["role"] == "user"]
        codes.append(user[-1])
    return codes


async def test_every_function_of_a_file_is_reviewed_with_its_exact_text(
    tmp_path: Path, gateway: str, llm: FakeLLM
) -> None:
    path = tmp_path / "box.py"
    path.write_text(SOURCE)
    result = await run_cli("code", str(path), "--gateway-url", gateway)
    assert result.code == 0, result.stderr
    headings = [line for line in result.stdout.splitlines() if not line.startswith("  ")]
    assert [h.split(": ")[0] for h in headings] == [f"add ({path}:4)", f"Box.size ({path}:10)"]
    assert "  1. Check the inputs before using them." in result.stdout.splitlines()
    # The gateway got each function as it is in the file (a method dedented so it parses alone).
    assert all(any(code in sent for sent in sent_code(llm)) for code in (ADD, SIZE)), sent_code(llm)
    assert len(sent_code(llm)) == 2


async def test_one_function_by_name_as_json_and_fail_on_suggestions(
    tmp_path: Path, gateway: str, llm: FakeLLM
) -> None:
    path = tmp_path / "box.py"
    path.write_text(SOURCE)
    result = await run_cli(
        "code", f"{path}:Box.size", "--json", "--fail-on-suggestions", env={"CODEREVIEW_GATEWAY_URL": gateway}
    )
    assert result.code == 1, result.stderr
    answer = json.loads(result.stdout)
    assert answer["path"] == str(path)
    [function] = answer["functions"]
    assert (function["name"], function["line"]) == ("Box.size", 10)
    assert "Check the inputs before using them." in function["suggestions"]
    assert len(sent_code(llm)) == 1
    assert SIZE in sent_code(llm)[0]


async def test_a_failing_provider_and_code_over_the_gateways_limit(
    tmp_path: Path, gateway: str, llm: FakeLLM
) -> None:
    path = tmp_path / "box.py"
    path.write_text(SOURCE)
    llm.script("/chat/completions", error_reply(500, "the model is on fire"))
    failed = await run_cli("code", f"{path}:add", "--gateway-url", gateway)
    assert failed.code == 4
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith(f"codereview: gateway at {gateway}: 502: ")
    assert line.endswith(f"(reviewing add, {path}:4)")

    huge = tmp_path / "huge.py"
    huge.write_text("def big():\n" + "    x = 1\n" * 9000)
    too_big = await run_cli("code", str(huge), "--gateway-url", gateway)
    assert too_big.code == 2
    assert "422" in too_big.stderr


async def test_a_gateway_with_keys_wants_one_and_takes_it_from_the_variable_or_the_option(
    tmp_path: Path, llm: FakeLLM, service_logs: Path
) -> None:
    path = tmp_path / "box.py"
    path.write_text(SOURCE)
    env = {
        **BLANK,
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-cli",
        "OPENAI_BASE_URL": llm.url + "/v1",
        "LLM_MAX_RETRIES": "0",
        "CODEREVIEW_API_KEYS": "cli-key-0123",
    }
    with service_process("gateway", env, service_logs, port_variable="GATEWAY_PORT") as gateway:
        without = await run_cli("code", f"{path}:add", "--gateway-url", gateway.url)
        wrong = await run_cli("code", f"{path}:add", "--gateway-url", gateway.url, "--api-key", "cli-key")
        from_variable = await run_cli(
            "code", f"{path}:add", "--gateway-url", gateway.url, env={"CODEREVIEW_API_KEY": "cli-key-0123"}
        )
        from_option = await run_cli(
            "code", f"{path}:add", "--gateway-url", gateway.url, "--api-key", "cli-key-0123"
        )
    for refused in (without, wrong):
        assert refused.code == 2
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"codereview: gateway at {gateway.url}: 401: ")
        assert "give the key with CODEREVIEW_API_KEY (or --api-key)" in line
    assert "cli-key" not in wrong.stderr
    assert from_variable.code == 0, from_variable.stderr
    assert from_option.code == 0, from_option.stderr
    # Only a right call reached the provider (the second from the gateway's cache), with the
    # provider's key, not the caller's.
    assert len(sent_code(llm)) == 1
    assert {r.headers["authorization"] for r in llm.sent("/chat/completions")} == {"Bearer sk-test-cli"}


async def test_a_function_is_checked_in_its_module_under_the_projects_ruff_configuration(
    tmp_path: Path, gateway: str, llm: FakeLLM
) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.ruff.lint]\nselect = ["E", "F"]\n')
    package = project / "shop"
    package.mkdir()
    path = package / "orders.py"
    path.write_text(
        "import json\n\n\ndef dump(items):\n    return json.dumps(items) + suffix\n\n\nsuffix = ''\n"
        "\n\ndef total(items):\n    return sum(items) + missing\n"
    )
    result = await run_cli("code", str(path), "--json", "--gateway-url", gateway)
    assert result.code == 0, result.stderr
    reviews = {f["name"]: f["suggestions"] for f in json.loads(result.stdout)["functions"]}
    model = "Check the inputs before using them."  # the fake provider's answer to every review
    # The project selects E and F: no type-hint or docstring demands; the module's names are
    # known (json, suffix), an undefined one is said.
    assert reviews == {"dump": [model], "total": ["Undefined name missing.", model]}
