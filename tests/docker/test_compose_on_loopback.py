"""The stack exactly as compose and the images configure it, run here as processes on loopback.

No Docker engine runs here, so this is the closest thing to `docker compose up`: each service
gets the environment its image sets plus what docker-compose.yml gives it, and nothing else (no
.env, no variables from this shell); it starts in compose's dependency order once what it
depends on passes the image's own HEALTHCHECK command; model_host's image bakes its catalogue
model at build time, which here is a build without internet: model_host serves the bundled
model and says so once. Only what must differ on a shared machine is rewritten: service host names become
127.0.0.1, ports become free ones, `nats:4222` becomes a fresh nats-server, /models becomes a
temporary folder, the model hub a closed port.

The shell is the README's `LLM_PROVIDER=openai OPENAI_API_KEY=... docker compose up`, with
OPENAI_BASE_URL at a recording fake OpenAI: a review then goes fake GitHub -> fetcher ->
analyzer -> gateway -> "OpenAI" in seconds (the real model answers too slowly on a shared
2-core machine for a review; it is asked for a few tokens directly instead). Run once with the
default file, where model_host starts and must be healthy before the gateway, and once with
docker/without-model-host.yml, where the stack comes up without it. Like the images, the services
run without the libraries the builder prunes (tests/docker/test_pruned.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.docker.composed import (
    Running,
    composed,
    container_env,
    pull_model_as_the_image_build_does,
    start,
    start_order,
)
from tests.docker.project import COMPOSE_FILE, WITHOUT_MODEL_HOST
from tests.support.fake_github import FakeGitHub
from tests.support.fake_llm import FakeLLM, review_reply
from tests.support.servers import serving

pytestmark = [pytest.mark.nats, pytest.mark.model, pytest.mark.slow]


def test_start_order_puts_every_dependency_first() -> None:
    order = start_order(composed(COMPOSE_FILE))
    assert order.index("model_host") < order.index("gateway") < order.index("analyzer")
    assert order.index("analyzer") < order.index("fetcher"), (
        "the analyzer provisions the streams the fetcher checks"
    )
    assert "model_host" not in start_order(composed(COMPOSE_FILE, WITHOUT_MODEL_HOST))


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeLLM]:
    fake = FakeLLM(models=["gpt-4o-mini"])
    async with serving(fake) as url:
        fake.url = url
        yield fake


@pytest.mark.parametrize(
    "files", [(COMPOSE_FILE,), (COMPOSE_FILE, WITHOUT_MODEL_HOST)], ids=["default", "override"]
)
async def test_the_composed_stack_comes_up_healthy_and_reviews_a_function(
    files: tuple[Path, ...],
    nats_url: str,
    fake_github: FakeGitHub,
    fake_openai: FakeLLM,
    service_logs: Path,
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    # Offline, as a build without internet: the download fails, the build records why and goes on.
    assert await pull_model_as_the_image_build_does(models) == 0
    assert (models / "baked.json").is_file()
    workdir = tmp_path / "app"
    workdir.mkdir()
    # The user's shell: `LLM_PROVIDER=openai OPENAI_API_KEY=... docker compose up`, with OpenAI and
    # GitHub at their fakes' addresses.
    shell = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-compose-test",
        "OPENAI_BASE_URL": f"{fake_openai.url}/v1",
        "GITHUB_API_URL": fake_github.api_url,
    }
    fake_github.add_repo("octo", "demo", {"demo/calc.py": "def add(a, b):\n    return a+b\n"})
    fake_openai.script("chat/completions", review_reply("Check that both arguments are numbers."))

    services = composed(*files)
    running: dict[str, Running] = {}
    async with AsyncExitStack() as stack:
        for name in start_order(services):
            env, port = container_env(name, services[name], running, nats_url, models, shell)
            running[name] = await stack.enter_async_context(start(name, env, port, workdir, service_logs))
        assert ("model_host" in running) is (len(files) == 1)

        async with httpx.AsyncClient(timeout=120) as client:
            if "model_host" in running:
                model_host = running["model_host"].url
                listed = (await client.get(f"{model_host}/v1/models")).json()
                assert [model["id"] for model in listed["data"]] == ["SmolLM2-135M-Instruct.Q4_1"]
                answer = await client.post(
                    f"{model_host}/v1/chat/completions",
                    json={
                        "model": "SmolLM2-135M-Instruct.Q4_1",
                        "messages": [{"role": "user", "content": "Hi"}],
                        "max_tokens": 2,
                    },
                )
                assert answer.status_code == 200, answer.text
                # The image downloads nothing at start: it says once that it is offline, and why.
                log = running["model_host"].log.read_text()
                assert log.count("offline: serving the bundled model smollm2-135m") == 1, log
                assert "the image's build could not download qwen3-0.6b" in log
                assert "downloading" not in log
                assert "cannot write" not in log

            analyzer = running["analyzer"].url
            started = await client.post(
                f"{analyzer}/analyze/start", json={"repo_url": "https://github.com/octo/demo"}
            )
            assert started.status_code == 200, started.text
            assert set(started.json()) == {"job_id"}
            reviewed = await client.post(
                f"{analyzer}/analyze/function",
                json={"job_id": started.json()["job_id"], "function_name": "demo.calc.add"},
            )
            assert reviewed.status_code == 200, reviewed.text
            assert set(reviewed.json()) == {"suggestions"}
            assert "Check that both arguments are numbers." in reviewed.json()["suggestions"]

            # Litestar would import polyfactory, which the images prune, to make OpenAPI examples.
            for name in ("analyzer", "gateway"):
                schema = await client.get(f"{running[name].url}/schema/openapi.json")
                assert schema.status_code == 200, schema.text
                assert schema.json()["paths"], f"{name}: an empty schema"

    (sent,) = fake_openai.sent("chat/completions")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-compose-test"
    assert sent.json()["model"] == "gpt-4o-mini"
    assert "return a+b" in json.dumps(sent.json()["messages"])
