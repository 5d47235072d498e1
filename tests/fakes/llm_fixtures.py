"""Pytest fixtures `fake_ollama` and `fake_openai`: a fake LLM server on a loopback port.

Each yields the fake (see fake_ollama.FakeUpstream) with `.url` set (for OpenAI: the root, no /v1)
and `.server` (the ServerThread); hanging requests are released before the server stops.
"""

from __future__ import annotations

from typing import Iterator, TypeVar

import pytest

from tests.fakes.fake_ollama import FakeOllama, FakeUpstream
from tests.fakes.fake_openai import FakeOpenAI
from tests.server_thread import ServerThread

F = TypeVar("F", bound=FakeUpstream)


def run_fake(fake: F) -> Iterator[F]:
    server = ServerThread(fake).start()
    fake.url = server.url
    fake.server = server  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        fake.release()
        server.stop()


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    yield from run_fake(FakeOllama())


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    yield from run_fake(FakeOpenAI())
