"""WaddleAIProvider (openai SDK) against the fake OpenAI-compatible proxy over loopback: what is its own
(the contract it shares with OllamaProvider is in test_provider_contract.py)."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from llm.types import ChatRequest, ProviderError
from llm.factory import build_provider
from llm.waddleai import WaddleAIProvider

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


@pytest.fixture
async def provider(fake_openai):
    fake_openai.api_key = "sk-test"
    p = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0, api_key="sk-test", preferred_model="llama3.2")
    yield p
    await p.aclose()


async def collect(provider: WaddleAIProvider, request: ChatRequest) -> list:
    return [chunk async for chunk in provider.stream(request)]


async def test_chat_success(provider, fake_openai):
    fake_openai.model_name = "llama3.2"
    fake_openai.prompt_tokens, fake_openai.completion_tokens = 30, 11
    result = await provider.chat(ChatRequest(MESSAGES, temperature=0.4, max_tokens=64, top_p=0.5, stop=["END"]))
    assert (result.text, result.model, result.provider) == (fake_openai.reply, "llama3.2", "waddleai")
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (30, 11, "stop")
    body = fake_openai.last_body
    assert body["model"] == "auto" and body["messages"] == MESSAGES
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) == (0.4, 64, 0.5, ["END"])
    assert not body.get("stream")


async def test_headers_reach_the_proxy(provider, fake_openai):
    await provider.chat(ChatRequest(MESSAGES, request_id="req-1"))
    await collect(provider, ChatRequest(MESSAGES, request_id="req-2"))
    for (_, headers, _), rid in zip(fake_openai.chat_requests, ["req-1", "req-2"]):
        assert headers["x-request-id"] == rid
        assert headers["x-preferred-model"] == "llama3.2"
        assert headers["authorization"] == "Bearer sk-test"


async def test_no_key_sends_no_authorization(fake_openai):
    provider = WaddleAIProvider(fake_openai.url + "/v1/", "auto", timeout=5.0)
    try:
        assert provider.root == fake_openai.url
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
        assert await provider.list_models() and await provider.health()
    finally:
        await provider.aclose()
    assert [path for path, _, _ in fake_openai.requests] == ["/v1/chat/completions", "/v1/models", "/healthz"]
    for _, headers, _ in fake_openai.requests:
        assert "authorization" not in headers and "x-preferred-model" not in headers


async def test_rate_limit_counts_and_is_not_retried(provider, fake_openai):
    fake_openai.fail_status = 429
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    assert info.value.counts_for_breaker and fake_openai.calls == 1


async def test_health_and_models(provider, fake_openai):
    assert await provider.list_models() == ["gpt-4o-mini", "llama3.2"]
    assert await provider.health() is True
    assert fake_openai.requests[-1][0] == "/healthz"
    fake_openai.healthy = False
    assert await provider.health() is False
    with pytest.raises(ProviderError) as info:
        await provider.list_models()
    assert info.value.status == 503 and info.value.counts_for_breaker


async def test_from_settings_and_factory(fake_openai):
    fake_openai.api_key = "sk-settings"
    settings = load_settings(ai_provider="waddleai", waddleai_base_url=fake_openai.url + "/v1",
                             waddleai_api_key="sk-settings", waddleai_model="auto",
                             waddleai_preferred_model="mistral", request_timeout=9)
    provider = build_provider("waddleai", settings)
    try:
        assert isinstance(provider, WaddleAIProvider)
        assert (provider.root, provider.default_model, provider.timeout) == (fake_openai.url, "auto", 9)
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
    finally:
        await provider.aclose()
    assert fake_openai.requests[-1][1]["x-preferred-model"] == "mistral"


async def test_one_keep_alive_connection_for_calls_and_streams(provider, fake_openai):
    for _ in range(2):
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
        chunks = await collect(provider, ChatRequest(MESSAGES))
        assert chunks[-1].finish_reason == "stop"
    assert await provider.list_models() and await provider.health()
    assert fake_openai.connections == 1, "each stream is read to its end, so its connection is reused"


async def test_a_stream_closed_early_drops_its_connection(provider, fake_openai):
    fake_openai.token_delay = 60  # the fake pauses after the first piece until released
    stream = provider.stream(ChatRequest(MESSAGES))
    assert (await anext(stream)).text == "Hello"
    await stream.aclose()
    assert fake_openai.connections == 1
    fake_openai.release()
    fake_openai.token_delay = 0.0
    assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
    assert fake_openai.connections == 2, "the early-closed stream's connection is not reused"


async def test_proxy_environment_is_honoured_with_no_proxy_for_loopback(fake_openai, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0)
    try:
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
    finally:
        await provider.aclose()


@pytest.mark.parametrize("body", [b'{"choices": [{"message": {"content": 42}}]}', b'{"choices": []}', b"[1, 2]"])
async def test_wrong_shapes_are_garbage(provider, fake_openai, body, monkeypatch):
    async def respond(self, send, status, data, content_type="application/json"):
        await type(self).start(send, status, content_type)
        await send({"type": "http.response.body", "body": body})
    monkeypatch.setattr(type(fake_openai), "respond", respond)
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    assert info.value.kind == "garbage"
