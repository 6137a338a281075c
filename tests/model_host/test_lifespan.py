"""model_host's lifespan: a stop waits for a load under way, then shuts the model's thread down,
whether the load worked or failed (the failure named by /health and `on_load_failure`)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from litestar.testing import AsyncTestClient

from model_host.app import create_app
from model_host.engines import Engine
from model_host.host import ModelHost
from model_host.resources import HOST_KEY
from model_host.settings import Settings
from tests.model_host.fakes import ScriptedEngine


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, model_name="tiny", **overrides)


def model_threads(host: ModelHost) -> list[threading.Thread]:
    """The host's worker threads still alive (one once a load or a generation has run)."""
    return [thread for thread in list(host.executor._threads) if thread.is_alive()]


async def test_a_failed_load_is_named_and_a_stop_ends_the_model_thread() -> None:
    failures: list[BaseException] = []

    def broken_loader(_: Settings) -> Engine:
        raise ValueError("MODEL_PATH /models/x.gguf: not a GGUF model file")

    app = create_app(settings(), loader=broken_loader, on_load_failure=failures.append)
    host: ModelHost = app.state[HOST_KEY]
    async with AsyncTestClient(app) as client:
        async with asyncio.timeout(30):
            while not failures:
                await asyncio.sleep(0.01)
        assert (await client.get("/health")).json()[
            "error"
        ] == "MODEL_PATH /models/x.gguf: not a GGUF model file"
        assert len(model_threads(host)) == 1
    assert model_threads(host) == []


async def test_a_stop_while_loading_waits_for_the_load_then_ends_the_model_thread() -> None:
    release = threading.Event()
    loaded: list[Engine] = []

    def slow_loader(_: Settings) -> Engine:
        release.wait(30)
        loaded.append(ScriptedEngine())
        return loaded[0]

    app = create_app(settings(), loader=slow_loader)
    host: ModelHost = app.state[HOST_KEY]
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health")).json()["status"] == "loading"
        # Released only once the stop has begun (by a timer: the test client may block this
        # thread while the app stops): the stop must wait for it.
        timer = threading.Timer(0.5, release.set)
        timer.start()
    timer.join()
    assert len(loaded) == 1
    assert host.state == "ok"
    assert model_threads(host) == []
