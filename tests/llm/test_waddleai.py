"""WaddleAIProvider (openai SDK) against the fake OpenAI-compatible proxy over loopback."""

from __future__ import annotations

import time

import pytest

from config.settings import load_settings
from llm.types import ChatRequest, ModelNotFound, ProviderError
from llm.factory import build_provider
from llm.waddleai import WaddleAIProvider
from tests.server_thread import free_port
from tests.waiting import async_wait_until

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


@pytest.fixture
async def provider(fake_openai):
    fake_openai.api_key = "sk-test"
    p = WaddleAIProvider(fake_openai.url, "auto", timeout=5.0, api_key="sk-test", preferred_model="llama3.2")
    yield p
    await p.aclose()


async def collect(provider: WaddleAIProvider, request: ChatRequest) -> list:
    return [chunk async for chunk in provider.stream(request)]


async def run(provider: WaddleAIProvider, streaming: bool, request: ChatRequest | None = None):
    request = request or ChatRequest(MESSAGES)
    return await (collect(provider, request) if streaming else provider.chat(request))


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


async def test_finish_reason_length(provider, fake_openai):
    fake_openai.done_reason = "length"
    assert (await provider.chat(ChatRequest(MESSAGES))).finish_reason == "length"
    assert (await collect(provider, ChatRequest(MESSAGES)))[-1].finish_reason == "length"


async def test_stream_yields_chunks_as_they_are_produced(provider, fake_openai):
    fake_openai.token_delay = 0.05
    fake_openai.prompt_tokens, fake_openai.completion_tokens = 4, 6
    stream = provider.stream(ChatRequest(MESSAGES, max_tokens=10))
    first = await anext(stream)
    first_at = time.monotonic()
    assert first.text == "Hello" and first.finish_reason is None
    assert fake_openai.last_stream_finished_at is None, "first chunk must arrive before the fake finishes"
    rest = [chunk async for chunk in stream]
    # the fake notes its end just after writing the last event, so the client may be done first: wait for it
    finished_at = await async_wait_until(lambda: fake_openai.last_stream_finished_at, timeout=5,
                                         message="the fake to note the end of its stream")
    assert first_at < finished_at
    assert "".join(c.text for c in [first, *rest]) == fake_openai.reply
    final = rest[-1]
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("stop", 4, 6)
    body = fake_openai.last_body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_server_error_counts_and_is_one_request(provider, fake_openai):
    fake_openai.fail_status = 500
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    err = info.value
    assert (err.kind, err.status, err.counts_for_breaker, err.provider) == ("bad_status", 500, True, "waddleai")
    assert fake_openai.calls == 1, "the SDK must not retry"


async def test_rate_limit_counts_and_is_not_retried(provider, fake_openai):
    fake_openai.fail_status = 429
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    assert info.value.counts_for_breaker and fake_openai.calls == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_bad_request_does_not_count(provider, fake_openai, streaming):
    fake_openai.fail_status = 400
    with pytest.raises(ProviderError) as info:
        await run(provider, streaming)
    assert (info.value.kind, info.value.status, info.value.counts_for_breaker) == ("request", 400, False)


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model(provider, fake_openai, streaming):
    fake_openai.strict_models = True
    with pytest.raises(ModelNotFound) as info:
        await run(provider, streaming, ChatRequest(MESSAGES, model="gpt-99"))
    assert info.value.model == "gpt-99" and not info.value.counts_for_breaker


@pytest.mark.parametrize("streaming", [False, True])
async def test_hang_times_out(fake_openai, streaming):
    fake_openai.hang = True
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=0.5, api_key="k")
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await run(provider, streaming)
    finally:
        await provider.aclose()
    assert info.value.kind == "timeout" and info.value.counts_for_breaker
    assert time.monotonic() - started < 5
    assert fake_openai.calls == 1


async def test_stall_midstream_times_out(fake_openai):
    fake_openai.token_delay = 3
    provider = WaddleAIProvider(fake_openai.url, "auto", timeout=0.5, api_key="k")
    received = []
    try:
        with pytest.raises(ProviderError) as info:
            async for chunk in provider.stream(ChatRequest(MESSAGES)):
                received.append(chunk.text)
    finally:
        await provider.aclose()
    assert received == ["Hello"] and info.value.kind == "timeout"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("garbage", [True, "shape"])
async def test_garbage(provider, fake_openai, garbage, streaming):
    fake_openai.garbage = garbage
    with pytest.raises(ProviderError) as info:
        await run(provider, streaming)
    assert info.value.kind == "garbage" and info.value.counts_for_breaker


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused(streaming):
    provider = WaddleAIProvider(f"http://127.0.0.1:{free_port()}", "auto", timeout=5.0, api_key="k")
    try:
        with pytest.raises(ProviderError) as info:
            await run(provider, streaming)
        assert info.value.kind == "connect" and info.value.counts_for_breaker
        assert await provider.health() is False
    finally:
        await provider.aclose()


async def test_error_midstream(provider, fake_openai):
    fake_openai.error_midstream_after = 2
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(ChatRequest(MESSAGES)):
            received.append(chunk.text)
    assert received == ["Hello", " there,"]
    assert info.value.counts_for_breaker and "mid-stream" in str(info.value)


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
