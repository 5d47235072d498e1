"""A clock the llm tests move by hand (breakers take `clock=`)."""

from __future__ import annotations

import pytest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()
