"""Fixtures of the OpenAI-compatible API's tests: the app on each provider (`ollama`, `waddleai`, and
`setup`, both in turn), each yielding a `Setup` (tests/web/completion_apps.py). A test module may
override `ask`: the messages `Setup.create` / `Setup.post` send by default."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.support import make_settings, running_app
from tests.web.completion_apps import KEY, MODELS, Setup


@pytest.fixture
def ask() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Hello?"}]


@pytest.fixture
def ollama(fake_ollama, ask) -> Iterator[Setup]:
    with running_app(make_settings(ollama=fake_ollama, valid_api_keys=KEY)) as app:
        yield Setup("ollama", MODELS["ollama"], fake_ollama, app, ask)


@pytest.fixture
def waddleai(fake_openai, ask) -> Iterator[Setup]:
    with running_app(make_settings(openai=fake_openai, ai_provider="waddleai", valid_api_keys=KEY)) as app:
        yield Setup("waddleai", MODELS["waddleai"], fake_openai, app, ask)


@pytest.fixture(params=["ollama", "waddleai"])
def setup(request) -> Setup:
    return request.getfixturevalue(request.param)
