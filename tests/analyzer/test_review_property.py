"""Property, end to end: for every function and class of real codebases, asking the analyzer for its
dotted name sends exactly the source `ast` gives for it (decorators included, whole lines) to the
gateway, as a module of its own: the later lines without the indentation of the first.

Each codebase (installed packages of different styles) is packed as a fake GitHub tarball,
fetched by the real fetcher (`python -m fetcher`), and every name is asked through HTTP. The
expected text is the lookup's oracle (tests/analyzer/test_locate_property.py): one place
defines what "exactly the source" means.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import httpx
import pytest

from analyzer.app import create_app
from analyzer.settings import Settings
from tests.analyzer.test_locate_property import Codebase, Oracle, _Definitions, module_name, snapshot_files
from tests.support.fake_gateway import FakeGateway
from tests.support.fake_github import FakeGitHub
from tests.support.provision import provision_jobs_async
from tests.support.servers import service_process, serving

pytestmark = [pytest.mark.nats, pytest.mark.slow]

CODEBASES = [Codebase("attr"), Codebase("click"), Codebase("dateutil"), Codebase("yaml", root="lib")]


def expected_sources(files: dict[str, bytes], root: str) -> dict[str, str]:
    """Dotted name -> the exact text the gateway must receive, for every definition in `files`."""
    expected: dict[str, str] = {}
    for path, data in files.items():
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
        collector = _Definitions()
        collector.visit(ast.parse(text))
        oracle = Oracle(text)
        module = module_name(path, root)
        for qualname, nodes in collector.found.items():
            first = min(nodes, key=lambda n: (n.lineno, n.col_offset))
            number = (first.decorator_list[0] if first.decorator_list else first).lineno
            line = re.split(r"\r\n|\r|\n", text)[number - 1]
            indent = line[: len(line) - len(line.lstrip())]
            lines = re.split(r"(\r\n|\r|\n)", oracle.expected(nodes))
            expected[f"{module}.{qualname}"] = "".join(
                [lines[0], *(p.removeprefix(indent) if i % 2 == 0 else p for i, p in enumerate(lines[1:], 1))]
            )
    return expected


@pytest.mark.parametrize("codebase", CODEBASES, ids=lambda c: c.package)
async def test_every_function_reaches_the_gateway_exactly(
    codebase: Codebase, nats_url: str, fake_github: FakeGitHub, service_logs: Path
) -> None:
    # The fetcher keeps .py files only; so does the expectation.
    files = {path: data for path, data in snapshot_files(codebase).items() if path.endswith(".py")}
    packed: dict[str, bytes | str] = dict(files)
    fake_github.add_repo("someone", codebase.package, packed)
    expected = expected_sources(files, codebase.root)
    assert len(expected) > 200

    gateway = FakeGateway()
    env = {"NATS_URL": nats_url, "GITHUB_API_URL": fake_github.api_url}
    await provision_jobs_async(nats_url)  # the analyzer's part, before the fetcher that checks it
    with service_process("fetcher", env, service_logs, port_variable="FETCHER_HEALTH_PORT"):
        async with serving(gateway) as gateway_url:
            settings = Settings(
                nats_url=nats_url,
                gateway_url=f"{gateway_url}/v1",
                # No cut: the property is about the whole source.
                analyzer_source_max_chars=10_000_000,
            )
            async with (
                serving(create_app(settings)) as url,
                httpx.AsyncClient(base_url=url, timeout=60) as client,
            ):
                started = await client.post(
                    "/analyze/start", json={"repo_url": f"https://github.com/someone/{codebase.package}"}
                )
                job_id = started.json()["job_id"]
                wrong: list[str] = []
                for name, source in expected.items():
                    response = await client.post(
                        "/analyze/function", json={"job_id": job_id, "function_name": name}
                    )
                    assert response.status_code == 200, (name, response.text)
                    if gateway.requests[-1].messages != [{"role": "user", "content": source}]:
                        wrong.append(name)
    assert wrong == []
    assert len(gateway.requests) == len(expected)
    assert {r.model for r in gateway.requests} == {"code-review"}
