"""Pytest fixture for the fake router (tests/fakes/fake_router.py); registered in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fake_router import FakeRouter


@pytest.fixture
def fake_router() -> Iterator[FakeRouter]:
    """A started fake router; `.base_url` is the ROUTER_API_URL to use, `.url` the server root."""
    fake = FakeRouter().start()
    try:
        yield fake
    finally:
        fake.stop()
