"""WaddleAIProvider (openai SDK) against the fake OpenAI-compatible proxy over loopback: what is its own
(the contract it shares with OllamaProvider is in test_provider_contract.py)."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from llm.types import ChatRequest, ModelNotFound, ProviderError, ProviderMisconfigured
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


@pytest.mark.parametrize("body", [
    b'{"choices": [{"message": {"content": 42}}]}', b'{"choices": []}', b"[1, 2]", b'{"choices": {"0": {}}}',
    b'{"choices": [{"message": "hi"}]}', b'{"choices": [{"message": {"content": "hi", "tool_calls": "x"}}]}',
    b'{"choices": [{"message": {"content": "hi", "tool_calls": [1]}}]}',
    b'{"choices": [{"message": {"content": "hi"}, "logprobs": [1]}]}'])
async def test_wrong_shapes_are_garbage(provider, fake_openai, body, monkeypatch):
    async def respond(self, send, status, data, content_type="application/json"):
        await type(self).start(send, status, content_type)
        await send({"type": "http.response.body", "body": body})
    monkeypatch.setattr(type(fake_openai), "respond", respond)
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    assert info.value.kind == "garbage"


@pytest.mark.parametrize("event", [
    b"[1, 2]", b'{"choices": [7]}', b'{"choices": [{"delta": "text"}]}', b'{"choices": [{"delta": {"content": 42}}]}',
    b'{"choices": [{"delta": {"tool_calls": "x"}}]}', b'{"choices": [{"delta": {}, "logprobs": "x"}]}'])
async def test_wrong_chunk_shapes_are_garbage(provider, fake_openai, event, monkeypatch):
    """Chunks are read as the JSON the proxy sent (no typed model in between): a chunk of the wrong
    shape is a garbage answer, never an exception of another kind or a silently empty piece."""
    async def stream(self, send, model, include_usage, fault, body=None):
        await self.start(send, 200, "text/event-stream")
        await self.chunk(send, b"data: " + event + b"\n\ndata: [DONE]\n\n", more=False)
    monkeypatch.setattr(type(fake_openai), "_stream", stream)
    with pytest.raises(ProviderError) as info:
        await collect(provider, ChatRequest(MESSAGES))
    assert info.value.kind == "garbage"


# --- real proxies: extra headers, health without /healthz, how they say "no such model" ---------------

PORTKEY_HEADERS = {"x-portkey-provider": "openai", "x-portkey-api-key": "pk-test"}


async def test_extra_headers_go_on_every_call(fake_openai):
    fake_openai.healthz = False
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0, api_key="sk-test",
                                extra_headers=PORTKEY_HEADERS)
    try:
        await provider.chat(ChatRequest(MESSAGES))
        await collect(provider, ChatRequest(MESSAGES))
        assert await provider.list_models() and await provider.health()
    finally:
        await provider.aclose()
    assert [path for path, _, _ in fake_openai.requests] == [
        "/v1/chat/completions", "/v1/chat/completions", "/v1/models", "/healthz", "/v1/models"]
    for _, headers, _ in fake_openai.requests:
        assert {k: headers.get(k) for k in PORTKEY_HEADERS} == PORTKEY_HEADERS
        assert headers["authorization"] == "Bearer sk-test"


async def test_an_authorization_among_the_extra_headers_is_sent_without_a_key(fake_openai):
    fake_openai.api_key = "sk-from-headers"
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0,
                                extra_headers={"Authorization": "Bearer sk-from-headers"})
    try:
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
        assert await provider.health()
    finally:
        await provider.aclose()


async def test_health_falls_back_to_models_when_there_is_no_healthz_and_remembers_it(provider, fake_openai):
    fake_openai.healthz = False
    assert await provider.health() is True
    assert await provider.health() is True
    assert [path for path, _, _ in fake_openai.requests] == ["/healthz", "/v1/models", "/v1/models"]
    assert provider.health_path == "/v1/models"
    fake_openai.healthy = False  # /v1/models answers 503
    assert await provider.health() is False
    fake_openai.healthy = True
    fake_openai.api_key = "another-key"  # /v1/models refuses our key: not healthy either
    assert await provider.health() is False


async def test_a_healthz_failing_otherwise_than_404_is_unhealthy(provider, fake_openai):
    fake_openai.healthy = False  # /healthz answers 503: no fallback to /v1/models
    assert await provider.health() is False
    assert [path for path, _, _ in fake_openai.requests] == ["/healthz"]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("style", ["openai", "litellm", "vllm"])
async def test_no_such_model_in_any_status_is_model_not_found(provider, fake_openai, style, streaming):
    fake_openai.strict_models, fake_openai.unknown_model_as = True, style
    with pytest.raises(ModelNotFound) as info:
        request = ChatRequest(MESSAGES, model="nope")
        await (collect(provider, request) if streaming else provider.chat(request))
    assert info.value.model == "nope" and not info.value.counts_for_breaker and info.value.scope == "model"


@pytest.mark.parametrize("streaming", [False, True])
async def test_portkey_without_its_provider_header_is_our_misconfiguration(fake_openai, streaming):
    fake_openai.portkey = True
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0)
    try:
        with pytest.raises(ProviderMisconfigured) as info:
            request = ChatRequest(MESSAGES)
            await (collect(provider, request) if streaming else provider.chat(request))
        assert await provider.health() is False, "Portkey has no /healthz and refuses /v1/models too"
    finally:
        await provider.aclose()
    error = info.value
    assert (error.status, error.kind, error.counts_for_breaker, error.scope) == (400, "misconfigured", True, "endpoint")
    assert "x-portkey-provider header is required" in str(error)


async def test_portkey_with_its_provider_header_answers_and_is_healthy(fake_openai):
    fake_openai.portkey = True
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0,
                                extra_headers={"x-portkey-provider": "openai"})
    try:
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_openai.reply
        assert await provider.health() and await provider.list_models() == fake_openai.models
    finally:
        await provider.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_our_misconfiguration(provider, fake_openai, status):
    fake_openai.fail_status = status
    with pytest.raises(ProviderMisconfigured) as info:
        await provider.chat(ChatRequest(MESSAGES))
    assert (info.value.status, info.value.counts_for_breaker) == (status, True)


async def test_no_api_at_our_url_is_our_misconfiguration(fake_openai):
    provider = WaddleAIProvider(fake_openai.url + "/wrong/prefix", "auto", timeout=5.0)
    try:
        with pytest.raises(ProviderMisconfigured) as info:
            await provider.chat(ChatRequest(MESSAGES))
    finally:
        await provider.aclose()
    assert info.value.status == 404


async def test_one_models_rate_limit_is_model_scoped(provider, fake_openai):
    fake_openai.failing_models = {"model-a": 429}
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES, model="model-a"))
    assert (info.value.status, info.value.counts_for_breaker, info.value.scope) == (429, True, "model")
    assert (await provider.chat(ChatRequest(MESSAGES, model="model-b"))).text == fake_openai.reply
