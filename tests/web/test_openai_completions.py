"""POST …/chat/completions without streaming, through the official openai SDK (§8)."""

from __future__ import annotations

import time

import openai
import pytest

from observability import metrics
from tests.support import make_settings, running_app

KEY = "test-key"
MESSAGES = [{"role": "user", "content": "hi there"}]


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def client(app, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=app.url + prefix, api_key=KEY, max_retries=0)


@pytest.fixture
def app(fake_ollama):
    with running_app(make_settings(ollama=fake_ollama, valid_api_keys=KEY)) as handle:
        yield handle


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1/ai"])
def test_bare_chat_completion_with_real_usage(app, fake_ollama, prefix):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 23, 9
    with client(app, prefix) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="llama3.2", messages=MESSAGES)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "llama3.2"
    assert abs(completion.created - time.time()) < 3600
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content == fake_ollama.reply  # never cleaned or prefixed
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (23, 9, 32)
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-overhead-ms"]) >= 0
    assert raw.headers["content-type"].startswith("application/json")


def test_ids_are_unique_across_calls(app):
    with client(app) as sdk:
        ids = {sdk.chat.completions.create(model="llama3.2", messages=MESSAGES).id for _ in range(5)}
    assert len(ids) == 5


def test_length_finish_reason_is_mapped(app, fake_ollama):
    fake_ollama.done_reason = "length"
    with client(app) as sdk:
        completion = sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"


def test_sampling_parameters_go_in_ollama_options(app, fake_ollama):
    with client(app) as sdk:
        sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, temperature=0.25,
                                    max_completion_tokens=42, top_p=0.9, stop=["END", "STOP"])
        body = fake_ollama.last_body
        assert body["options"] == {"temperature": 0.25, "num_predict": 42, "top_p": 0.9, "stop": ["END", "STOP"]}
        assert "temperature" not in body and "top_p" not in body
        sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, max_tokens=7, stop="END")
        assert fake_ollama.last_body["options"] == {"num_predict": 7, "stop": ["END"]}
        sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert "options" not in fake_ollama.last_body or not fake_ollama.last_body["options"]


def test_messages_reach_the_provider_mapped_to_ollamas_fields(app, fake_ollama):
    messages = [
        {"role": "developer", "content": "be terse"},
        {"role": "system", "content": "you are a test"},
        {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "user", "content": "<b>and</b> *this* & that?"},
    ]
    with client(app) as sdk:
        completion = sdk.chat.completions.create(model="llama3.2", messages=messages)
    assert not completion.choices[0].message.content.startswith("🤖")
    assert fake_ollama.last_body["messages"] == [
        {"role": "system", "content": "be terse"},
        {"role": "system", "content": "you are a test"},
        {"role": "user", "content": "Hello\nworld"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},  # no content: left out
        {"role": "tool", "content": "42", "tool_name": "f"},  # the call's name, found by its id
        {"role": "user", "content": "<b>and</b> *this* & that?"},
    ]


def test_completions_never_touch_the_chat_context(app):
    with client(app) as sdk:
        sdk.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hello @everyone"}])
    assert len(app.runtime.context) == 0


def test_n_1_and_user_are_honoured_on_ollama(app, fake_ollama):
    with client(app) as sdk:
        completion = sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, n=1, user="someone",
                                                 safety_identifier="hashed-someone")
    assert completion.choices[0].message.content
    assert "user" not in fake_ollama.last_body  # logged here (hashed): Ollama has no such field


@pytest.mark.parametrize("extra,param", [
    ({"surprise": {"x": 1}}, "surprise"),
    ({"top_k": 40}, "top_k"),  # a proxy's or Ollama's own knob is not an OpenAI parameter
    ({"messages": [{"role": "user", "content": "x", "timestamp": 1}]}, "messages[0].timestamp"),
    ({"stream": True, "stream_options": {"include_usage": True, "chunk_size": 3}}, "stream_options.chunk_size"),
], ids=["top-level", "vendor-knob", "message", "stream_options"])
def test_unknown_fields_are_a_400_naming_them(app, fake_ollama, extra, param):
    body = {"model": "llama3.2", "messages": MESSAGES, **extra}
    response = app.http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "unknown_parameter")
    assert error["message"] == f"Unrecognized request argument supplied: {param}"
    assert fake_ollama.chat_requests == []


async def test_async_client(app, fake_ollama):
    async with openai.AsyncOpenAI(base_url=app.url + "/api/v1/ai", api_key=KEY, max_retries=0) as sdk:
        completion = await sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, temperature=1.5)
    assert completion.choices[0].message.content == fake_ollama.reply
    assert fake_ollama.last_body["options"]["temperature"] == 1.5


def test_request_id_reaches_the_provider(app, fake_ollama):
    with client(app) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="llama3.2", messages=MESSAGES, extra_headers={"X-Request-ID": "req-openai-1"})
    assert raw.headers["x-request-id"] == "req-openai-1"
    assert fake_ollama.chat_requests[-1][1]["x-request-id"] == "req-openai-1"


def test_provider_calls_are_counted_with_tokens(app, fake_ollama):
    labels = {"provider": "ollama", "model": "llama3.2"}
    before = sample("ai_provider_requests_total", result="success", **labels)
    tokens = sample("ai_tokens_total", kind="prompt", **labels)
    with client(app) as sdk:
        sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert sample("ai_provider_requests_total", result="success", **labels) == before + 1
    assert sample("ai_tokens_total", kind="prompt", **labels) == tokens + fake_ollama.prompt_tokens


# --- WaddleAI as the provider ----------------------------------------------------------------------
def test_waddleai_gets_parameters_top_level_and_reports_usage(fake_openai):
    fake_openai.prompt_tokens, fake_openai.completion_tokens = 31, 4
    fake_openai.done_reason = "length"
    settings = make_settings(openai=fake_openai, ai_provider="waddleai", valid_api_keys=KEY)
    with running_app(settings) as app, client(app) as sdk:
        completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5,
                                                 max_tokens=16, top_p=0.8, stop="###")
    body = fake_openai.last_body
    assert (body["model"], body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) == (
        "gpt-4o-mini", 0.5, 16, 0.8, ["###"])
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (31, 4)


# --- model selection ---------------------------------------------------------------------------
@pytest.fixture
def both(fake_ollama, fake_openai):
    fake_ollama.models = ["llama3.2:latest", "mistral:7b"]
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, fallback_provider="waddleai",
                             valid_api_keys=KEY)
    with running_app(settings) as handle:
        yield handle


@pytest.mark.parametrize("requested,provider,sent", [
    ("llama3.2", "ollama", "llama3.2"),  # the configured default
    ("mistral:7b", "ollama", "mistral:7b"),  # any other name: the primary first
    ("ollama/mistral:7b", "ollama", "mistral:7b"),  # provider-qualified
    ("waddleai/gpt-4o-mini", "waddleai", "gpt-4o-mini"),
    ("auto", "waddleai", "auto"),  # the fallback's default model
])
def test_model_routing(both, fake_ollama, fake_openai, requested, provider, sent):
    with client(both) as sdk:
        completion = sdk.chat.completions.create(model=requested, messages=MESSAGES)
    fake = fake_ollama if provider == "ollama" else fake_openai
    other = fake_openai if provider == "ollama" else fake_ollama
    assert fake.last_body["model"] == sent and other.chat_requests == []
    assert completion.model == sent


def test_unknown_model_is_a_404_naming_the_model(app, fake_ollama):
    fake_ollama.strict_models = True
    with client(app) as sdk, pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "no-such-model" in caught.value.message


def test_model_unknown_to_the_primary_is_tried_on_the_fallback(both, fake_ollama, fake_openai):
    fake_ollama.strict_models = True
    with client(both) as sdk:
        completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.model == "gpt-4o-mini"
    assert fake_ollama.last_body["model"] == "gpt-4o-mini" and fake_openai.last_body["model"] == "gpt-4o-mini"


def test_qualified_model_does_not_fail_over(both, fake_ollama, fake_openai):
    fake_ollama.fail_status = 503
    with client(both) as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="ollama/llama3.2", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert fake_openai.chat_requests == []


def test_default_model_fails_over_to_the_fallback_default(both, fake_ollama, fake_openai):
    fake_ollama.fail_status = 503
    with client(both) as sdk:
        completion = sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert completion.model == "auto"  # the model that really answered
    assert completion.choices[0].message.content == fake_openai.reply
