"""Model-scoped failures (§5) through LLMService, the real WaddleAIProvider and the fake proxy: a
model's quota or rate limit never opens the provider's breaker for its other models; an endpoint
failure still does. And an upstream refusing our own configuration is logged once, as an error."""

from __future__ import annotations

import io
import json
import sys
from contextlib import aclosing

import pytest

from llm.breaker import CircuitBreaker
from llm.health import ProviderHealth
from llm.service import LLMService
from llm.types import ChatRequest, ModelNotFound, ProviderError, ProviderMisconfigured, ProviderUnavailable
from llm.waddleai import WaddleAIProvider
from observability import logs

MESSAGES = [{"role": "user", "content": "hi there"}]
THRESHOLD = 3


@pytest.fixture
async def llm(fake_openai, clock):
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0)
    breaker = CircuitBreaker("waddleai", THRESHOLD, reset_s=30, clock=clock)
    service = LLMService({"waddleai": provider}, {"waddleai": breaker},
                         ProviderHealth({"waddleai": provider}, 60), "waddleai", None, 4)
    yield service
    await provider.aclose()


def ask(model: str) -> list:
    return [("waddleai", ChatRequest(MESSAGES, model=model))]


async def stream_text(llm: LLMService, model: str) -> str:
    async with aclosing(llm.stream(ChatRequest(MESSAGES, model=model), "waddleai")) as chunks:
        return "".join([chunk.text async for chunk in chunks])


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_models_rate_limit_leaves_the_other_models_callable(llm, fake_openai, clock, streaming):
    fake_openai.failing_models = {"model-a": 429}
    for _ in range(THRESHOLD * 2):
        with pytest.raises(ProviderError):
            await (stream_text(llm, "model-a") if streaming else llm.complete(ask("model-a")))
    assert fake_openai.calls == THRESHOLD, "model-a fails fast once its own breaker opened"
    assert llm.breakers["waddleai"].state == "closed" and llm.usable("waddleai")
    with pytest.raises(ProviderUnavailable) as info:
        await llm.complete(ask("model-a"))
    assert info.value.model == "model-a" and info.value.provider == "waddleai"

    assert (await llm.complete(ask("model-b"))).text == fake_openai.reply
    assert await stream_text(llm, "model-b") == fake_openai.reply

    fake_openai.failing_models = {}
    clock.now += 30  # model-a's breaker lets one probe through; its success closes it
    assert (await llm.complete(ask("model-a"))).text == fake_openai.reply
    assert llm.model_breakers.get(llm.breakers["waddleai"], "model-a") is None


async def test_unknown_models_open_no_breaker(llm, fake_openai):
    fake_openai.strict_models, fake_openai.unknown_model_as = True, "litellm"
    for _ in range(THRESHOLD * 2):
        with pytest.raises(ModelNotFound):
            await llm.complete(ask("nope"))
    assert fake_openai.calls == THRESHOLD * 2
    assert llm.breakers["waddleai"].state == "closed"
    assert llm.model_breakers.get(llm.breakers["waddleai"], "nope") is None
    assert (await llm.complete(ask("llama3.2"))).text == fake_openai.reply


async def test_endpoint_failures_still_open_the_provider_breaker(llm, fake_openai):
    fake_openai.failing_models = {"model-a": 503}
    for _ in range(THRESHOLD):
        with pytest.raises(ProviderError):
            await llm.complete(ask("model-a"))
    assert llm.breakers["waddleai"].state == "open"
    with pytest.raises(ProviderUnavailable) as info:
        await llm.complete(ask("model-b"))
    assert info.value.model is None and fake_openai.calls == THRESHOLD


@pytest.fixture
def log_lines(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buffer)
    logs.configure_logging("INFO")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    monkeypatch.undo()
    logs.configure_logging("WARNING")


async def test_a_refused_configuration_is_logged_once_until_it_answers(llm, fake_openai, log_lines):
    fake_openai.portkey = True  # no x-portkey-provider header configured
    for _ in range(2):
        with pytest.raises(ProviderMisconfigured):
            await llm.complete(ask("llama3.2"))
    refused = [r for r in log_lines() if r.get("action") == "provider_misconfigured"]
    assert len(refused) == 1 and refused[0]["level"] == "error"
    assert refused[0]["provider"] == "waddleai" and refused[0]["status"] == 400
    assert "x-portkey-provider header is required" in refused[0]["error"]
    assert llm.breakers["waddleai"].consecutive_failures == 2, "counted against the endpoint, not the request"

    fake_openai.portkey = False
    assert (await llm.complete(ask("llama3.2"))).text == fake_openai.reply
    fake_openai.portkey = True
    with pytest.raises(ProviderMisconfigured):
        await llm.complete(ask("llama3.2"))
    assert len([r for r in log_lines() if r.get("action") == "provider_misconfigured"]) == 2
