"""Fixtures for the analyzer's tests: a fake gateway on loopback, and what the snapshot cache reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from analyzer import snapshots
from tests.support.fake_gateway import FakeGateway
from tests.support.servers import serving


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    """A fake gateway served on loopback; its base URL (with /v1) is `gateway.base_url`."""
    fake = FakeGateway()
    async with serving(fake) as url:
        fake.base_url = f"{url}/v1"
        yield fake


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The object names the cache reads from NATS, in order."""
    names: list[str] = []
    real = snapshots.read_object

    async def counting(js: Any, store: Any, bucket: str, name: str, timeout_s: float) -> Any:
        names.append(name)
        return await real(js, store, bucket, name, timeout_s)

    monkeypatch.setattr(snapshots, "read_object", counting)
    return names
