"""The contract both providers keep, each against its own fake over loopback: finish reasons, how
failures are classed (breaker or not, one request), timeouts, garbage, refused connections, errors
mid-stream and streaming as produced. What only one provider does stays in test_ollama.py and
test_waddleai.py; what differs between them here is in CASES."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from llm.ollama import OllamaProvider
from llm.types import ChatRequest, ModelNotFound, Provider, ProviderError
from llm.waddleai import WaddleAIProvider
from tests.fakes.fake_ollama import FakeUpstream
from tests.server_thread import free_port
from tests.waiting import async_wait_until

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


@dataclass(frozen=True)
class Case:
    fake_fixture: str  # the fixture of tests/fakes/llm_fixtures.py that runs this provider's fake
    build: Callable[[FakeUpstream], Provider]  # as the `provider` fixture of test_<name>.py builds it
    at: Callable[[str, float], Provider]  # a provider for url with the given timeout
    stream_body: dict[str, Any]  # what a streamed request with max_tokens=10 carries besides stream=True


def build_waddleai(fake: FakeUpstream) -> Provider:
    fake.api_key = "sk-test"  # type: ignore[attr-defined]  # the fake then checks the key
    return WaddleAIProvider(fake.url, "auto", timeout=5.0, api_key="sk-test", preferred_model="llama3.2")


CASES = {  # keyed by the provider's name, as its results and errors carry it
    "ollama": Case(
        fake_fixture="fake_ollama",
        build=lambda fake: OllamaProvider(fake.url, "llama3.2", timeout=5.0),
        at=lambda url, timeout: OllamaProvider(url, "llama3.2", timeout=timeout),
        stream_body={"options": {"num_predict": 10}},
    ),
    "waddleai": Case(
        fake_fixture="fake_openai",
        build=build_waddleai,
        at=lambda url, timeout: WaddleAIProvider(url, "auto", timeout=timeout, api_key="k"),
        stream_body={"stream_options": {"include_usage": True}},
    ),
}


@pytest.fixture(params=list(CASES))
def name(request) -> str:
    return request.param


@pytest.fixture
def case(name) -> Case:
    return CASES[name]


@pytest.fixture
def fake(case, request) -> FakeUpstream:
    return request.getfixturevalue(case.fake_fixture)


@pytest.fixture
async def provider_and_fake(case, fake):
    provider = case.build(fake)
    yield provider, fake
    await provider.aclose()


async def collect(provider: Provider, request: ChatRequest) -> list:
    return [chunk async for chunk in provider.stream(request)]


async def run(provider: Provider, streaming: bool, request: ChatRequest | None = None):
    request = request or ChatRequest(MESSAGES)
    return await (collect(provider, request) if streaming else provider.chat(request))


async def test_finish_reason_length(provider_and_fake):
    provider, fake = provider_and_fake
    fake.done_reason = "length"
    assert (await provider.chat(ChatRequest(MESSAGES))).finish_reason == "length"
    assert (await collect(provider, ChatRequest(MESSAGES)))[-1].finish_reason == "length"


async def test_stream_yields_chunks_as_they_are_produced(provider_and_fake, case):
    provider, fake = provider_and_fake
    fake.token_delay = 0.1  # the first chunk must be read well before the fake ends, even on a busy machine
    fake.prompt_tokens, fake.completion_tokens = 5, 8
    stream = provider.stream(ChatRequest(MESSAGES, max_tokens=10))
    first = await anext(stream)
    first_at = time.monotonic()
    assert first.text == "Hello" and first.finish_reason is None
    assert fake.last_stream_finished_at is None, "first chunk must arrive before the fake finishes"
    rest = [chunk async for chunk in stream]
    # the fake notes its end just after writing the last piece, so the client may be done first: wait for it
    finished_at = await async_wait_until(lambda: fake.last_stream_finished_at, timeout=5,
                                         message="the fake to note the end of its stream")
    assert first_at < finished_at
    assert "".join(c.text for c in [first, *rest]) == fake.reply
    final = rest[-1]
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("stop", 5, 8)
    assert all(c.finish_reason is None for c in rest[:-1])
    body = fake.last_body
    assert body["stream"] is True
    assert {key: body.get(key) for key in case.stream_body} == case.stream_body


async def test_server_error_counts_and_is_one_request(provider_and_fake, name):
    provider, fake = provider_and_fake
    fake.fail_status = 500
    with pytest.raises(ProviderError) as info:
        await provider.chat(ChatRequest(MESSAGES))
    err = info.value
    assert (err.kind, err.status, err.counts_for_breaker, err.provider) == ("bad_status", 500, True, name)
    assert fake.calls == 1, "the client must not retry"


@pytest.mark.parametrize("streaming", [False, True])
async def test_bad_request_does_not_count(provider_and_fake, streaming):
    provider, fake = provider_and_fake
    fake.fail_status = 400
    with pytest.raises(ProviderError) as info:
        await run(provider, streaming)
    assert (info.value.kind, info.value.status, info.value.counts_for_breaker) == ("request", 400, False)


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model(provider_and_fake, streaming):
    provider, fake = provider_and_fake
    fake.strict_models = True
    with pytest.raises(ModelNotFound) as info:
        await run(provider, streaming, ChatRequest(MESSAGES, model="nope"))
    assert info.value.model == "nope" and info.value.counts_for_breaker is False


@pytest.mark.parametrize("streaming", [False, True])
async def test_hang_times_out(case, fake, streaming):
    fake.hang = True
    started = time.monotonic()
    async with contextlib.aclosing(case.at(fake.url, 0.5)) as provider:
        with pytest.raises(ProviderError) as info:
            await run(provider, streaming)
    assert info.value.kind == "timeout" and info.value.counts_for_breaker
    assert time.monotonic() - started < 5
    assert fake.calls == 1


async def test_stall_midstream_times_out(case, fake):
    fake.token_delay = 3
    received = []
    async with contextlib.aclosing(case.at(fake.url, 0.5)) as provider:
        with pytest.raises(ProviderError) as info:
            async for chunk in provider.stream(ChatRequest(MESSAGES)):
                received.append(chunk.text)
    assert received == ["Hello"] and info.value.kind == "timeout"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("garbage", [True, "shape"])
async def test_garbage(provider_and_fake, garbage, streaming):
    provider, fake = provider_and_fake
    fake.garbage = garbage
    with pytest.raises(ProviderError) as info:
        await run(provider, streaming)
    assert info.value.kind == "garbage" and info.value.counts_for_breaker


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused(case, streaming):
    async with contextlib.aclosing(case.at(f"http://127.0.0.1:{free_port()}", 5.0)) as provider:
        with pytest.raises(ProviderError) as info:
            await run(provider, streaming)
        assert info.value.kind == "connect" and info.value.counts_for_breaker
        assert await provider.health() is False


async def test_error_midstream(provider_and_fake):
    provider, fake = provider_and_fake
    fake.error_midstream_after = 2
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(ChatRequest(MESSAGES)):
            received.append(chunk.text)
    assert received == ["Hello", " there,"]
    assert info.value.counts_for_breaker and "mid-stream" in str(info.value)
