"""Fixtures every suite uses: a real nats-server, the fake GitHub, loopback servers.

The full test command runs the tests in parallel worker processes (pytest-xdist, see noxfile.py):
each worker has its own session fixtures (its own shared nats-server, model, temporary folders)
and its own block of ports (tests/support/ports.py), so a test is safe in parallel as long as it
takes ports from `free_port()`/`bound_socket()` and folders from `tmp_path`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

from tests.support.fake_github import FakeGitHub
from tests.support.nats import running_nats_server

# The tests run six at a time on two cores, so every model they load (in this process or in a
# model_host they start) reads prompts on one thread: llama.cpp's threads wait for each other at a
# spinning barrier after every layer, and on shared cores a second one burns CPU instead of
# helping (the model API tests beside two busy loops: 18-20 s of CPU with two, 10 s with one).
# tests/model_host/test_model_api.py checks the default (every core) on an engine of its own.
os.environ.setdefault("MODEL_BATCH_THREADS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the real model all on one worker: it is loaded once there, and two generations
    never compete for the 2 cores (llama.cpp uses every core it is given).

    Modules with `slow` tests run first, those with the most first: the workers are handed tests
    in this order, and a long test handed out last keeps the run going on one worker while the others
    idle. A module stays in one piece, so its module fixtures still start once per worker."""
    for item in items:
        if "smollm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("model"))
        if item.get_closest_marker("alone") is not None and "pytest.mark.alone" not in item.path.read_text():
            # The full test command runs `alone` tests from the modules whose text says so (noxfile.py).
            raise pytest.UsageError(
                f"{item.nodeid} is marked alone, but not by `pytest.mark.alone` in its module"
            )
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)

    def slow_tests(module: str) -> int:
        return sum(item.get_closest_marker("slow") is not None for item in modules[module])

    items[:] = [item for module in sorted(modules, key=slow_tests, reverse=True) for item in modules[module]]
    if getattr(config.option, "loadgroup", False):
        _group_ids(items)


def _group_ids(items: list[pytest.Item]) -> None:
    """What pytest-xdist's `--dist loadgroup` does on a worker, done so that pytest 9.2 sees it: the
    name of an item's `xdist_group` after its node id, which tells the controller to hand the
    group's tests to one worker. xdist 3.8 writes the old `Item._nodeid`, which pytest 9.2 no longer
    reads (its node id is `Item._id`), so without this every test was handed out alone."""
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)
            assert item.nodeid.endswith(suffix), "pytest no longer reads Item._id"


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh nats-server with JetStream and its own store folder, for one test."""
    with running_nats_server(tmp_path / "jetstream") as url:
        yield url


@pytest.fixture(scope="session")
def shared_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One nats-server for the whole session: use unique subjects, buckets and job ids."""
    with running_nats_server(tmp_path_factory.mktemp("jetstream-shared")) as url:
        yield url


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """The fake GitHub on a free loopback port; `fake_github.api_url` is GITHUB_API_URL."""
    with FakeGitHub.running() as github:
        yield github


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where service processes started by tests write their output."""
    return tmp_path_factory.mktemp("service-logs")
