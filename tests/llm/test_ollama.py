"""OllamaProvider against the fake Ollama server over loopback."""

from __future__ import annotations

import time

import certifi
import pytest

from config.settings import load_settings
from llm.types import ChatRequest, ModelNotFound, ProviderError
from llm.factory import build_provider
from llm.ollama import OllamaProvider
from observability.logs import request_id_var
from tests.server_thread import free_port
from tests.waiting import async_wait_until

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


@pytest.fixture
async def provider(fake_ollama):
    p = OllamaProvider(fake_ollama.url, "llama3.2", timeout=5.0)
    yield p
    await p.aclose()


async def collect(provider: OllamaProvider, request: ChatRequest) -> list:
    return [chunk async for chunk in provider.stream(request)]


async def test_chat_success_puts_sampling_in_options(provider, fake_ollama):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 21, 9
    result = await provider.chat(ChatRequest(MESSAGES, temperature=0.3, max_tokens=42, top_p=0.9, stop=["\n"]))
    assert (result.text, result.model, result.provider) == (fake_ollama.reply, "llama3.2", "ollama")
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (21, 9, "stop")
    body = fake_ollama.last_body
    assert body["options"] == {"temperature": 0.3, "num_predict": 42, "top_p": 0.9, "stop": ["\n"]}
    assert "temperature" not in body and "num_predict" not in body and "max_tokens" not in body
    assert body["stream"] is False and body["model"] == "llama3.2" and body["messages"] == MESSAGES


async def test_explicit_model_and_reported_model(provider, fake_ollama):
    fake_ollama.model_name = "mistral:7b"
    result = await provider.chat(ChatRequest(MESSAGES, model="mistral"))
    assert fake_ollama.last_body["model"] == "mistral" and result.model == "mistral:7b"
    assert "options" not in fake_ollama.last_body


async def test_finish_reason_length(provider, fake_ollama):
    fake_ollama.done_reason = "length"
    assert (await provider.chat(ChatRequest(MESSAGES))).finish_reason == "length"
    chunks = await collect(provider, ChatRequest(MESSAGES))
    assert chunks[-1].finish_reason == "length"


async def test_stream_yields_chunks_as_they_are_produced(provider, fake_ollama):
    fake_ollama.token_delay = 0.1  # the first chunk must be read well before the fake ends, even on a busy machine
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 5, 8
    stream = provider.stream(ChatRequest(MESSAGES, max_tokens=10))
    first = await anext(stream)
    first_at = time.monotonic()
    assert first.text == "Hello" and first.finish_reason is None
    assert fake_ollama.last_stream_finished_at is None, "first chunk must arrive before the fake finishes"
    rest = [chunk async for chunk in stream]
    # the fake notes its end just after writing the last line, so the client may be done first: wait for it
    finished_at = await async_wait_until(lambda: fake_ollama.last_stream_finished_at, timeout=5,
                                         message="the fake to note the end of its stream")
    assert first_at < finished_at
    assert "".join(c.text for c in [first, *rest]) == fake_ollama.reply
    final = rest[-1]
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("stop", 5, 8)
    assert all(c.finish_reason is None for c in rest[:-1])
    body = fake_ollama.last_body
    assert body["stream"] is True and body["options"] == {"num_predict": 10}


async def test_server_error_counts_and_is_one_request(provider, fake_ollama):
    fake_ollama.fail_status = 500
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    err = info.value
    assert (err.kind, err.status, err.counts_for_breaker, err.provider) == ("bad_status", 500, True, "ollama")
    assert fake_ollama.calls == 1


async def test_fail_times_then_recovers(provider, fake_ollama):
    fake_ollama.fail_status, fake_ollama.fail_times = 503, 1
    with pytest.raises(ProviderError):
        await provider.chat(ChatRequest(MESSAGES))
    assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_ollama.reply


@pytest.mark.parametrize("streaming", [False, True])
async def test_bad_request_does_not_count(provider, fake_ollama, streaming):
    fake_ollama.fail_status = 400
    with pytest.raises(ProviderError) as info:
        await (collect(provider, ChatRequest(MESSAGES)) if streaming else provider.chat(ChatRequest(MESSAGES)))
    assert (info.value.kind, info.value.status, info.value.counts_for_breaker) == ("request", 400, False)


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model(provider, fake_ollama, streaming):
    fake_ollama.strict_models = True
    request = ChatRequest(MESSAGES, model="nope")
    with pytest.raises(ModelNotFound) as info:
        await (collect(provider, request) if streaming else provider.chat(request))
    assert info.value.model == "nope" and info.value.counts_for_breaker is False


@pytest.mark.parametrize("streaming", [False, True])
async def test_hang_times_out(fake_ollama, streaming):
    fake_ollama.hang = True
    provider = OllamaProvider(fake_ollama.url, "llama3.2", timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await (collect(provider, ChatRequest(MESSAGES)) if streaming else provider.chat(ChatRequest(MESSAGES)))
    finally:
        await provider.aclose()
    assert info.value.kind == "timeout" and info.value.counts_for_breaker
    assert time.monotonic() - started < 5


async def test_stall_midstream_times_out(fake_ollama):
    fake_ollama.token_delay = 3
    provider = OllamaProvider(fake_ollama.url, "llama3.2", timeout=0.5)
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
async def test_garbage(provider, fake_ollama, garbage, streaming):
    fake_ollama.garbage = garbage
    with pytest.raises(ProviderError) as info:
        await (collect(provider, ChatRequest(MESSAGES)) if streaming else provider.chat(ChatRequest(MESSAGES)))
    assert info.value.kind == "garbage" and info.value.counts_for_breaker


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused(streaming):
    provider = OllamaProvider(f"http://127.0.0.1:{free_port()}", "llama3.2", timeout=5.0)
    try:
        with pytest.raises(ProviderError) as info:
            await (collect(provider, ChatRequest(MESSAGES)) if streaming else provider.chat(ChatRequest(MESSAGES)))
        assert info.value.kind == "connect" and info.value.counts_for_breaker
        assert await provider.health() is False
    finally:
        await provider.aclose()


async def test_error_midstream(provider, fake_ollama):
    fake_ollama.error_midstream_after = 2
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(ChatRequest(MESSAGES)):
            received.append(chunk.text)
    assert received == ["Hello", " there,"]
    assert info.value.counts_for_breaker and "mid-stream" in str(info.value)


async def test_request_id_is_sent_upstream(provider, fake_ollama):
    await provider.chat(ChatRequest(MESSAGES, request_id="req-chat-1"))
    await collect(provider, ChatRequest(MESSAGES, request_id="req-stream-2", extra_headers={"X-Trace": "t"}))
    token = request_id_var.set("req-from-context")
    try:
        await provider.chat(ChatRequest(MESSAGES))
    finally:
        request_id_var.reset(token)
    await provider.chat(ChatRequest(MESSAGES))
    headers = [h for _, h, _ in fake_ollama.chat_requests]
    assert [h.get("x-request-id") for h in headers] == ["req-chat-1", "req-stream-2", "req-from-context", None]
    assert headers[1]["x-trace"] == "t"


async def test_health_and_models(provider, fake_ollama):
    fake_ollama.models = ["llama3.2:latest", "mistral:7b"]
    assert await provider.list_models() == ["llama3.2:latest", "mistral:7b"]
    assert await provider.health() is True
    fake_ollama.healthy = False
    assert await provider.health() is False
    with pytest.raises(ProviderError) as info:
        await provider.list_models()
    assert info.value.status == 503


async def test_from_settings_and_factory(fake_ollama):
    host, port = fake_ollama.url.removeprefix("http://").split(":")
    settings = load_settings(ollama_host=host, ollama_port=int(port), ollama_model="llama3.2",
                             request_timeout=7)
    provider = build_provider("ollama", settings)
    try:
        assert isinstance(provider, OllamaProvider)
        assert (provider.url, provider.default_model, provider.timeout) == (fake_ollama.url, "llama3.2", 7)
        assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_ollama.reply
    finally:
        await provider.aclose()
    with pytest.raises(ValueError):
        build_provider("nope", settings)


@pytest.mark.parametrize("verify_ssl, cert_path", [(False, None), (True, certifi.where())])
async def test_tls_settings(verify_ssl, cert_path):
    settings = load_settings(ollama_host="ollama.internal", ollama_use_tls=True,
                             ollama_verify_ssl=verify_ssl, ollama_cert_path=cert_path)
    provider = OllamaProvider.from_settings(settings)
    try:
        assert provider.url == "https://ollama.internal:11434"
    finally:
        await provider.aclose()
