"""Fixtures for the analyzer's tests: a fake gateway on loopback, and app settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_gateway import FakeGateway
from tests.support.servers import serving


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    """A fake gateway served on loopback; its base URL (with /v1) is `gateway.base_url`."""
    fake = FakeGateway()
    async with serving(fake) as url:
        fake.base_url = f"{url}/v1"
        yield fake
