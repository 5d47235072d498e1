"""POST …/chat/completions with `stream: true`: SSE as OpenAI sends it (§8).

`fake.token_delay = 60` makes the fake pause between pieces until `fake.release()`: the test
sees the first token while the fake is provably still generating, with no sleeps and no clocks.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from observability import metrics
from tests.support import make_settings, running_app
from tests.waiting import wait_until

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MESSAGES = [{"role": "user", "content": "hi there"}]
PAUSE = 60.0  # "until released"
SLOW = 60.0  # REQUEST_TIMEOUT is also the provider's read timeout between chunks: outlast any pause


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def client(app, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=app.url + prefix, api_key=KEY, max_retries=0)


def events(raw: bytes) -> list[bytes]:
    """Split an SSE body into its `data:` payloads, checking the framing of every event."""
    assert raw.endswith(b"\n\n")
    parts = raw[:-2].split(b"\n\n")
    for part in parts:
        assert part.startswith(b"data: ") and b"\n" not in part, part
    return [part[len(b"data: "):] for part in parts]


@pytest.fixture
def app(fake_ollama):
    with running_app(make_settings(ollama=fake_ollama, valid_api_keys=KEY, request_timeout=SLOW)) as handle:
        yield handle


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1/ai"])
def test_stream_with_usage(app, fake_ollama, prefix):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 17, 8
    with client(app, prefix) as sdk:
        chunks = list(sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"llama3.2"}
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 1 and "".join(content) == fake_ollama.reply
    final, usage = chunks[-2], chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert usage.choices == [] and (usage.usage.prompt_tokens, usage.usage.completion_tokens,
                                    usage.usage.total_tokens) == (17, 8, 25)
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_and_length_finish(app, fake_ollama):
    fake_ollama.done_reason = "length"
    with client(app) as sdk:
        chunks = list(sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True, max_tokens=3))
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices for c in chunks) and fake_ollama.last_body["options"]["num_predict"] == 3


def test_first_token_arrives_while_the_provider_is_still_generating(app, fake_ollama):
    fake_ollama.token_delay = PAUSE
    with client(app) as sdk:
        stream = sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True)
        texts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not texts:
                    assert fake_ollama.stream_started_at is not None
                    assert fake_ollama.last_stream_finished_at is None  # still generating
                    fake_ollama.release()
                texts.append(chunk.choices[0].delta.content)
    assert "".join(texts) == fake_ollama.reply


async def test_async_stream(app, fake_ollama):
    async with openai.AsyncOpenAI(base_url=app.url + "/api/v1/ai", api_key=KEY, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True,
                                                   stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_ollama.reply
    assert chunks[-1].usage.completion_tokens == fake_ollama.completion_tokens


def test_raw_sse_framing_and_no_buffering(app, fake_ollama):
    fake_ollama.token_delay = PAUSE
    body = {"model": "llama3.2", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    headers = {**AUTH, "X-Request-ID": "req-sse-1"}
    with app.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "req-sse-1"
        assert float(response.headers["x-overhead-ms"]) >= 0
        raw = b""
        pieces = response.iter_raw()
        while raw.count(b"\n\n") < 2:  # the role delta and the first token, before the fake is done
            raw += next(pieces)
        assert fake_ollama.last_stream_finished_at is None
        fake_ollama.release()
        raw += b"".join(pieces)
    payloads = events(raw)
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 19
    assert chunks[-2]["choices"][0]["delta"] == {} and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert fake_ollama.chat_requests[-1][1]["x-request-id"] == "req-sse-1"


def test_midstream_failure_is_an_in_band_error_the_sdk_raises(app, fake_ollama):
    fake_ollama.error_midstream_after = 2
    seen = []
    with client(app) as sdk, pytest.raises(openai.APIError) as caught:
        for chunk in sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True):
            seen.append(chunk)
    assert not isinstance(caught.value, openai.APIStatusError)  # raised from the event, after a 200
    assert "provider" in caught.value.message.lower()
    assert any(c.choices and c.choices[0].delta.content for c in seen)


def test_midstream_failure_raw_ends_with_the_error_and_no_done(app, fake_ollama):
    fake_ollama.error_midstream_after = 2
    labels = {"provider": "ollama", "model": "llama3.2"}
    before = sample("ai_provider_requests_total", result="error", **labels)
    response = app.http.post("/v1/chat/completions", headers=AUTH,
                             json={"model": "llama3.2", "messages": MESSAGES, "stream": True})
    assert response.status_code == 200
    payloads = events(response.content)
    error = json.loads(payloads[-1])["error"]
    assert error["type"] == "server_error" and error["code"] == "provider_error" and "param" in error
    assert b"[DONE]" not in payloads
    assert sample("ai_provider_requests_total", result="error", **labels) == before + 1


def test_failure_before_the_first_byte_is_an_http_error(app, fake_ollama):
    fake_ollama.fail_status = 500
    with client(app) as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 503 and caught.value.code == "provider_error"
    response = app.http.post("/v1/chat/completions", headers=AUTH,
                             json={"model": "llama3.2", "messages": MESSAGES, "stream": True})
    assert response.status_code == 503 and response.headers["content-type"].startswith("application/json")
    assert response.headers["retry-after"]


def test_stream_fails_over_before_the_first_chunk(fake_ollama, fake_openai):
    fake_ollama.fail_status = 503
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, fallback_provider="waddleai",
                             valid_api_keys=KEY)
    with running_app(settings) as app, client(app) as sdk:
        chunks = list(sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True}))
    assert {c.model for c in chunks} == {"auto"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_openai.reply
    assert chunks[-1].usage.prompt_tokens == fake_openai.prompt_tokens
    assert len(fake_ollama.chat_requests) == 1 and fake_openai.last_body["stream"] is True


def test_waddleai_stream(fake_openai):
    settings = make_settings(openai=fake_openai, ai_provider="waddleai", valid_api_keys=KEY)
    with running_app(settings) as app, client(app) as sdk:
        chunks = list(sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                  temperature=0.2, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_openai.reply
    assert chunks[-1].usage.completion_tokens == fake_openai.completion_tokens
    assert fake_openai.last_body["temperature"] == 0.2


def test_client_disconnect_cancels_the_provider_stream(fake_ollama):
    fake_ollama.token_delay = PAUSE
    settings = make_settings(ollama=fake_ollama, valid_api_keys=KEY, max_concurrent_requests=1,
                             request_timeout=SLOW)
    with running_app(settings) as app:
        llm = app.runtime.llm
        before = sample("ai_provider_requests_total", provider="ollama", model="llama3.2", result="cancelled")
        body = {"model": "llama3.2", "messages": MESSAGES, "stream": True}
        with app.http.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as response:
            pieces = response.iter_raw()  # keep a reference: a dropped iterator closes the stream
            next(pieces)
            assert response.status_code == 200
            assert (llm.active_streams, sample("ai_inflight_provider_calls")) == (1, 1)
        wait_until(lambda: llm.active_streams == 0 and sample("ai_inflight_provider_calls") == 0, message="provider stream closed")
        assert fake_ollama.last_stream_finished_at is None  # we stopped it, it did not finish
        wait_until(lambda: sample("ai_provider_requests_total", provider="ollama", model="llama3.2",
                                  result="cancelled") == before + 1)
        fake_ollama.release()
        with client(app) as sdk:  # the only slot is free again
            assert sdk.chat.completions.create(model="llama3.2", messages=MESSAGES).choices[0].message.content


def test_streamed_call_is_counted_once(app, fake_ollama):
    labels = {"provider": "ollama", "model": "llama3.2"}
    before = sample("ai_provider_requests_total", result="success", **labels)
    tokens = sample("ai_tokens_total", kind="completion", **labels)
    with client(app) as sdk:
        list(sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True))
    wait_until(lambda: sample("ai_provider_requests_total", result="success", **labels) >= before + 1)
    assert sample("ai_provider_requests_total", result="success", **labels) == before + 1
    assert sample("ai_tokens_total", kind="completion", **labels) == tokens + fake_ollama.completion_tokens


def test_response_timeout_never_cuts_a_stream(app, fake_ollama):
    assert app.app.config["RESPONSE_TIMEOUT"] is None
    app.app.config["RESPONSE_TIMEOUT"] = 0.05  # even if someone sets one, streams are exempt
    fake_ollama.reply = " ".join(f"word{i}" for i in range(20))
    fake_ollama.token_delay = 0.02  # the whole stream outlasts the timeout above
    response = app.http.post("/v1/chat/completions", headers=AUTH,
                             json={"model": "llama3.2", "messages": MESSAGES, "stream": True})
    payloads = events(response.content)
    assert payloads[-1] == b"[DONE]"
    text = "".join(json.loads(p)["choices"][0]["delta"].get("content") or "" for p in payloads[:-1])
    assert text == fake_ollama.reply


def test_client_giving_up_before_the_first_chunk_frees_the_slot(fake_ollama):
    fake_ollama.hang = True  # the provider accepts the call and never answers
    settings = make_settings(ollama=fake_ollama, valid_api_keys=KEY, request_timeout=SLOW)
    with running_app(settings) as app:
        llm = app.runtime.llm
        body = {"model": "llama3.2", "messages": MESSAGES, "stream": True}
        with pytest.raises(httpx.ReadTimeout):
            app.http.post("/v1/chat/completions", json=body, headers=AUTH, timeout=httpx.Timeout(10, read=0.3))
        assert fake_ollama.calls == 1
        wait_until(lambda: llm.active_streams == 0 and sample("ai_inflight_provider_calls") == 0, message="provider call cancelled")
        assert app.runtime.breakers["ollama"].state == "closed"  # a cancelled call is no provider failure
