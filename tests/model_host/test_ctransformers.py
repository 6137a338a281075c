"""The ctransformers engine with a GGML model the test writes itself (tests/model_host/tiny_gpt2.py).

ctransformers 0.2.27 cannot load current GGUF files (test_process.py shows the message), so the
engine is tested on what it can load: a legacy GGML GPT-2, tiny and random but predictable
under greedy decoding (always "a", or always the end token).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from model_host.app import create_app
from model_host.engines import CTransformersEngine, Engine
from model_host.settings import Settings
from tests.model_host.tiny_gpt2 import write_tiny_gpt2
from tests.support.clients import openai_client
from tests.support.servers import service_process, serving

# The module's models and engine are made once: its tests stay on one worker.
pytestmark = pytest.mark.xdist_group("ctransformers")

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
# The ChatML prompt, one token per character with tiny_gpt2's vocabulary.
PROMPT = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def ctransformers_settings(path: Path) -> Settings:
    return Settings(_env_file=None, model_path=path, model_engine="ctransformers", model_type="gpt2")


def load(path: Path) -> Engine:
    return CTransformersEngine(path, ctransformers_settings(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ggml")
    return {
        "a": write_tiny_gpt2(folder / "tiny-a.bin"),
        "eos": write_tiny_gpt2(folder / "tiny-eos.bin", favourite="<|endoftext|>"),
    }


@pytest.fixture(scope="module")
def engine(models: dict[str, Path]) -> Engine:
    return load(models["a"])


@pytest.fixture
async def client(engine: Engine, models: dict[str, Path]) -> AsyncIterator[AsyncOpenAI]:
    app = create_app(ctransformers_settings(models["a"]), engine=engine)
    async with serving(app) as url, openai_client(f"{url}/v1") as client:
        yield client


def test_the_engine_reads_the_ggml_file(engine: Engine) -> None:
    assert engine.name == "ctransformers"
    assert engine.context_size == 128  # from the file: ctransformers' gpt2 loader ignores the setting
    assert engine.tokenize("hi") == [ord("h") - 32, ord("i") - 32]
    assert engine.piece(ord("a") - 32) == b"a"
    assert engine.supports_grammar is False


async def test_greedy_generation_through_http(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="tiny-a", messages=HI, max_tokens=5, temperature=0
    )
    assert completion.choices[0].message.content == "aaaaa"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (len(PROMPT), 5)


async def test_stop_strings_and_streaming(client: AsyncOpenAI) -> None:
    stopped = await client.chat.completions.create(
        model="tiny-a",
        messages=HI,
        max_tokens=9,
        temperature=0,
        stop="aaa",
    )
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == ("", "stop")
    stream = await client.chat.completions.create(
        model="tiny-a",
        messages=HI,
        max_tokens=4,
        temperature=0,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "aaaa"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_the_end_token_ends_with_stop(models: dict[str, Path]) -> None:
    path = models["eos"]
    app = create_app(ctransformers_settings(path), engine=load(path))
    async with serving(app) as url, openai_client(f"{url}/v1") as client:
        completion = await client.chat.completions.create(model="tiny-eos", messages=HI, max_tokens=5)
    assert completion.choices[0].message.content == ""
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 0


async def test_json_formats_are_refused_on_this_engine(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model="tiny-a",
            messages=HI,
            max_tokens=5,
            response_format={"type": "json_object"},
        )
    assert refused.value.code == "unsupported_parameter"
    assert "MODEL_ENGINE=llama_cpp" in refused.value.message


async def test_the_context_of_the_file_limits_prompts(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model="tiny-a", messages=[{"role": "user", "content": "x" * 200}]
        )
    assert refused.value.code == "context_length_exceeded"
    assert "maximum context length is 128 tokens" in refused.value.message


@pytest.mark.slow
async def test_python_m_model_host_serves_a_ggml_model(models: dict[str, Path], service_logs: Path) -> None:
    env = {"MODEL_ENGINE": "ctransformers", "MODEL_PATH": str(models["a"]), "MODEL_TYPE": "gpt2"}
    with service_process("model_host", env, service_logs, port_variable="MODEL_HOST_PORT") as service:
        async with openai_client(f"{service.url}/v1") as client:
            completion = await client.chat.completions.create(
                model="tiny-a", messages=HI, max_tokens=3, temperature=0
            )
    assert completion.choices[0].message.content == "aaa"
