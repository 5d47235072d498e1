"""OllamaProvider against the fake Ollama server over loopback: what is Ollama's own (the contract it
shares with WaddleAIProvider is in test_provider_contract.py)."""

from __future__ import annotations

import certifi
import pytest

from config.settings import load_settings
from llm.types import ChatRequest, ProviderError
from llm.factory import build_provider
from llm.ollama import OllamaProvider
from observability.logs import request_id_var

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


async def test_fail_times_then_recovers(provider, fake_ollama):
    fake_ollama.fail_status, fake_ollama.fail_times = 503, 1
    with pytest.raises(ProviderError):
        await provider.chat(ChatRequest(MESSAGES))
    assert (await provider.chat(ChatRequest(MESSAGES))).text == fake_ollama.reply


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


async def test_what_it_cannot_honour_is_refused_before_any_call(provider, fake_ollama):
    from llm.fidelity import UnsupportedParameter

    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    request = ChatRequest(MESSAGES, tools=[tool], tool_choice="required")
    assert provider.unsupported(request).param == "tool_choice"
    with pytest.raises(UnsupportedParameter) as caught:
        await provider.chat(request)
    assert caught.value.param == "tool_choice" and not caught.value.counts_for_breaker
    with pytest.raises(UnsupportedParameter):
        await collect(provider, request)
    assert fake_ollama.chat_requests == []
    assert provider.unsupported(ChatRequest(MESSAGES, tools=[tool])) is None


async def test_streamed_tool_calls_are_indexed_across_lines(provider, fake_ollama):
    fake_ollama.reply = ""
    fake_ollama.tool_calls = [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]
    chunks = await collect(provider, ChatRequest(MESSAGES))
    deltas = [call for chunk in chunks for call in chunk.tool_calls or ()]
    assert [(d["index"], d["function"]["name"], d["function"]["arguments"]) for d in deltas] == \
        [(0, "a", '{"x":1}'), (1, "b", "{}")]
    assert chunks[-1].finish_reason == "tool_calls"
