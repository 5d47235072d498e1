"""Pytest fixtures for the fake routers (tests/fakes/fake_router.py, tests/fakes/waddlebot_router.py);
registered in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fake_router import FakeRouter
from tests.fakes.waddlebot_router import WaddleBotRouter


@pytest.fixture
def fake_router() -> Iterator[FakeRouter]:
    """A started fake router; `.base_url` is the ROUTER_API_URL to use, `.url` the server root."""
    fake = FakeRouter().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def waddlebot_router() -> Iterator[WaddleBotRouter]:
    """A started strict fake of the published WaddleBot router (tests/fakes/waddlebot_router.py)."""
    fake = WaddleBotRouter().start()
    try:
        yield fake
    finally:
        fake.stop()
