"""The real app with a REAL LiteLLM proxy as its WaddleAI upstream, through the official openai SDK:
completions and streams with usage, the upstream's models listed and retrievable, an unknown model
(LiteLLM's 400 "Invalid model name") as 404, upstream errors and time-outs, a model's rate limit kept
out of the endpoint breaker, health without /healthz, failover to it from a dead Ollama on both
paths, and WADDLEAI_EXTRA_HEADERS on every call (LiteLLM authenticates the app only by them)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import ANSWER, MASTER_KEY, MOCKS, STREAMED, LiteLLMProxy
from tests.server_thread import free_port
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until

KEY = "integration-key"
PROBE = "seen-through-litellm"
MESSAGES = [{"role": "user", "content": "hi there"}]


def settings(proxy: LiteLLMProxy, **overrides: Any):
    values: dict[str, Any] = dict(
        ai_provider="waddleai", waddleai_base_url=proxy.url, waddleai_model="mock-answer",
        # no WADDLEAI_API_KEY: LiteLLM's master key goes in its own header, with a header it forwards
        waddleai_extra_headers=json.dumps({"x-litellm-api-key": f"Bearer {MASTER_KEY}",
                                           "x-integration-probe": PROBE}),
        ollama_host="127.0.0.1", ollama_port=free_port(),  # nothing listens there: Ollama is dead
        valid_api_keys=KEY, request_timeout=5, breaker_failure_threshold=3)
    values.update(overrides)
    return make_settings(**values)


def client(app) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0)


def healthy(app, name: str = "waddleai") -> None:
    wait_until(lambda: app.runtime.health.status(name) is True, timeout=15, message=f"{name} healthy")


@pytest.fixture
def app(litellm_proxy):
    with running_app(settings(litellm_proxy)) as handle:
        healthy(handle)
        yield handle


def test_health_is_probed_on_v1_models_where_there_is_no_healthz(app, litellm_proxy):
    assert httpx.get(f"{litellm_proxy.url}/healthz").status_code == 404
    assert app.runtime.providers["waddleai"].health_path == "/v1/models"
    provider = app.http.get("/ready").json()["providers"]["waddleai"]
    assert (provider["healthy"], provider["breaker"]) == (True, "closed")


def test_a_completion_with_usage(app):
    with client(app) as sdk:
        answer = sdk.chat.completions.create(model="mock-answer", messages=MESSAGES)
    assert answer.choices[0].message.content == ANSWER
    assert (answer.model, answer.choices[0].finish_reason) == ("mock-answer", "stop")
    usage = answer.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_stream_with_usage(app):
    with client(app) as sdk:
        chunks = list(sdk.chat.completions.create(model="mock-stream", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True}))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1 and "".join(texts) == STREAMED, "relayed piece by piece, as LiteLLM streamed it"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_the_models_litellm_serves_are_listed_and_retrievable(app):
    with client(app) as sdk:
        listed = {m.id: m.owned_by for m in sdk.models.list()}
        assert set(MOCKS) | {"echo"} <= set(listed) and listed["mock-stream"] == "waddleai"
        served = sdk.models.retrieve("mock-stream")
        assert (served.id, served.owned_by) == ("mock-stream", "waddleai")


@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_model_is_a_404(app, stream):
    with client(app) as sdk, pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES, stream=stream)
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert app.runtime.breakers["waddleai"].consecutive_failures == 0


def test_an_upstream_error_is_a_503_and_counts(app):
    with client(app) as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="mock-error", messages=MESSAGES)
    assert (caught.value.status_code, caught.value.code) == (503, "provider_error")
    assert app.runtime.breakers["waddleai"].consecutive_failures == 1


@pytest.mark.parametrize("model,code", [("mock-timeout", "provider_error"), ("mock-hang", "provider_timeout")])
def test_time_outs_are_503s(litellm_proxy, model, code):
    """mock-timeout: LiteLLM's own 408 after 1 s; mock-hang: no answer within our REQUEST_TIMEOUT."""
    with running_app(settings(litellm_proxy, request_timeout=2)) as app, client(app) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model=model, messages=MESSAGES)
        assert (caught.value.status_code, caught.value.code) == (503, code)


def test_a_models_rate_limit_leaves_the_other_models_callable(app):
    with client(app) as sdk:
        for _ in range(3):  # BREAKER_FAILURE_THRESHOLD
            with pytest.raises(openai.InternalServerError):
                sdk.chat.completions.create(model="mock-ratelimit", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="mock-ratelimit", messages=MESSAGES)
        assert caught.value.code == "model_unavailable"
        assert app.runtime.breakers["waddleai"].state == "closed"
        assert sdk.chat.completions.create(model="mock-answer", messages=MESSAGES).choices[0].message.content == ANSWER


def test_extra_headers_reach_litellm_and_what_it_forwards(app, litellm_proxy):
    with client(app) as sdk:
        answer = sdk.chat.completions.create(model="echo", messages=MESSAGES)
    assert answer.choices[0].message.content == litellm_proxy.echo.reply
    _, headers, body = litellm_proxy.echo.chat_requests[-1]
    assert headers["x-integration-probe"] == PROBE and body["model"] == "echo"


def test_failover_from_a_dead_ollama_on_the_openai_path(litellm_proxy):
    with running_app(settings(litellm_proxy, ai_provider="ollama", fallback_provider="waddleai")) as app:
        healthy(app)
        with client(app) as sdk:
            answer = sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)  # Ollama's default
            assert (answer.model, answer.choices[0].message.content) == ("mock-answer", ANSWER)
            streamed = sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == ANSWER


def test_failover_from_a_dead_ollama_on_the_interaction_path(litellm_proxy, fake_router):
    overrides = dict(ai_provider="ollama", fallback_provider="waddleai", router_api_url=fake_router.base_url)
    with running_app(settings(litellm_proxy, **overrides)) as app:
        healthy(app)
        app.post_interaction(interaction_body("hello"))
        reply = fake_router.wait_for_replies(1, timeout=20)[0]["body"]
    data = reply["response_data"]
    assert (data["provider"], data["model"], data["fallback"]) == ("waddleai", "mock-answer", False)
    assert ANSWER in reply["chat_message"]


def test_a_key_litellm_refuses_is_a_502_not_the_callers_fault(litellm_proxy):
    wrong = json.dumps({"x-litellm-api-key": "Bearer sk-not-the-master-key"})
    with running_app(settings(litellm_proxy, waddleai_extra_headers=wrong)) as app, client(app) as sdk:
        wait_until(lambda: app.runtime.health.status("waddleai") is False, message="waddleai unhealthy")
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="mock-answer", messages=MESSAGES)
        assert (caught.value.status_code, caught.value.code) == (502, "upstream_misconfigured")
