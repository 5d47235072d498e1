"""Errors of the OpenAI-compatible API: OpenAI's shape and statuses, so the SDK raises the right class."""

from __future__ import annotations

import openai
import pytest

from tests.server_thread import free_port
from tests.support import make_settings, running_app
from tests.waiting import wait_until

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MESSAGES = [{"role": "user", "content": "hi there"}]
PREFIXES = ["/v1", "/api/v1/ai"]


def client(app, prefix: str = "/v1", key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=app.url + prefix, api_key=key, max_retries=0)


def assert_openai_error(response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    assert response.headers["x-request-id"] and float(response.headers["x-overhead-ms"]) >= 0
    return body["error"]


@pytest.fixture
def app(fake_ollama):
    settings = make_settings(ollama=fake_ollama, valid_api_keys=f"{KEY},other-key", max_completion_messages=3)
    with running_app(settings) as handle:
        yield handle


BAD_REQUESTS = [
    ("n", {"n": 2}),
    ("messages[0].role", {"messages": [{"role": "wizard", "content": "hi"}]}),
    ("temperature", {"temperature": 3}),
    ("temperature", {"temperature": -0.1}),
    ("top_p", {"top_p": 1.5}),
    ("max_tokens", {"max_tokens": 0}),
    ("max_completion_tokens", {"max_completion_tokens": -5}),
    ("messages", {"messages": []}),
    ("messages", {"messages": [{"role": "user", "content": "x"}] * 4}),  # MAX_COMPLETION_MESSAGES=3
    ("messages[0].content", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
    ("messages[0].content", {"messages": [{"role": "user", "content": 42}]}),
    ("messages[0].content", {"messages": [{"role": "user"}]}),
    ("messages[0].role", {"messages": [{"content": "no role"}]}),
    ("stop", {"stop": ["a", "b", "c", "d", "e"]}),
    ("stream", {"stream": "sometimes"}),
    ("stream_options.include_usage", {"stream_options": {"include_usage": "maybe"}}),
    ("model", {"model": 7}),
]


@pytest.mark.parametrize("param,change", BAD_REQUESTS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(BAD_REQUESTS)])
def test_bad_request_names_the_field(app, fake_ollama, param, change):
    body = {"model": "llama3.2", "messages": MESSAGES, **change}
    error = assert_openai_error(app.http.post("/v1/chat/completions", json=body, headers=AUTH), 400, param=param)
    assert error["type"] == "invalid_request_error"
    assert fake_ollama.chat_requests == []


@pytest.mark.parametrize("kwargs,param", [
    ({"n": 2}, "n"), ({"temperature": 3}, "temperature"), ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
])
def test_sdk_raises_bad_request(app, kwargs, param):
    call = {"model": "llama3.2", "messages": MESSAGES, **kwargs}
    with client(app) as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(**call)
    assert caught.value.param == param and caught.value.type == "invalid_request_error"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_malformed_json_and_non_object_bodies(app, prefix):
    for raw in (b"{not json", b"", b"[1, 2]", b'"text"'):
        response = app.http.post(f"{prefix}/chat/completions", content=raw,
                                 headers={**AUTH, "Content-Type": "application/json"})
        assert_openai_error(response, 400)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_wrong_method_is_an_openai_405(app, prefix):
    error = assert_openai_error(app.http.get(f"{prefix}/chat/completions", headers=AUTH), 405, "method_not_allowed")
    assert "POST" in error["message"]
    assert_openai_error(app.http.post(f"{prefix}/models", headers=AUTH), 405, "method_not_allowed")
    assert_openai_error(app.http.delete(f"{prefix}/models/llama3.2", headers=AUTH), 405, "method_not_allowed")


def test_unknown_url_under_v1_is_an_openai_404(app):
    assert_openai_error(app.http.get("/v1/embeddings", headers=AUTH), 404, "unknown_url")
    assert_openai_error(app.http.get("/v1", headers=AUTH), 404, "unknown_url")
    assert_openai_error(app.http.get("/v1/", headers=AUTH), 404, "unknown_url")
    assert_openai_error(app.http.post("/v1/chat/completion", headers=AUTH, json={}), 404, "unknown_url")
    with client(app) as sdk, pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="x", input="hi")


def test_service_routes_under_api_v1_ai_keep_their_own_shape(app):
    response = app.http.get("/api/v1/ai/interaction")
    assert response.status_code == 405 and response.json()["success"] is False


@pytest.mark.parametrize("prefix", PREFIXES)
def test_body_over_max_body_bytes_is_an_openai_413(app, prefix):
    big = {"model": "llama3.2", "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_openai_error(app.http.post(f"{prefix}/chat/completions", json=big, headers=AUTH), 413, "request_too_large")


# --- auth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", PREFIXES)
def test_bad_or_missing_key_is_401(app, prefix):
    with client(app, prefix, key="wrong") as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert caught.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            sdk.models.list()
    response = app.http.post(f"{prefix}/chat/completions", json={"messages": MESSAGES})
    assert_openai_error(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


def test_x_api_key_header_and_every_configured_key_work(app):
    body = {"model": "llama3.2", "messages": MESSAGES}
    assert app.http.post("/v1/chat/completions", json=body, headers={"X-API-Key": KEY}).status_code == 200
    assert app.http.post("/v1/chat/completions", json=body, headers={"X-API-Key": "other-key"}).status_code == 200
    with client(app, key="other-key") as sdk:
        assert sdk.models.list().data


def test_without_valid_api_keys_the_api_says_what_to_set(fake_ollama):
    with running_app(make_settings(ollama=fake_ollama)) as app, client(app, key="anything") as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert "VALID_API_KEYS" in caught.value.message
        with pytest.raises(openai.AuthenticationError):
            sdk.models.list()
    assert fake_ollama.chat_requests == []


# --- rate limit -------------------------------------------------------------------------------------
def test_per_key_rate_limit_is_a_429_with_retry_after(fake_ollama):
    settings = make_settings(ollama=fake_ollama, valid_api_keys=f"{KEY},other-key", completions_rate_per_min=2)
    with running_app(settings) as app, client(app) as sdk:
        for _ in range(2):
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert caught.value.code == "rate_limit_exceeded"
        assert int(caught.value.response.headers["retry-after"]) >= 1
        assert "COMPLETIONS_RATE_PER_MIN" in caught.value.message
        assert len(fake_ollama.chat_requests) == 2
        assert sdk.models.list().data  # the model list is not rate limited
        with client(app, key="other-key") as other:  # per key
            assert other.chat.completions.create(model="llama3.2", messages=MESSAGES).choices
        logged = repr(app.runtime.completion_limiter._buckets)
        assert KEY not in logged and "other-key" not in logged


# --- provider unavailable ------------------------------------------------------------------------------
def test_open_breaker_is_a_503_without_touching_the_provider(fake_ollama):
    fake_ollama.fail_status = 500
    settings = make_settings(ollama=fake_ollama, valid_api_keys=KEY, breaker_failure_threshold=1)
    with running_app(settings) as app, client(app) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert caught.value.status_code == 503 and caught.value.code == "provider_error"
        assert app.runtime.breakers["ollama"].state == "open"
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as caught:
                sdk.chat.completions.create(model="llama3.2", messages=MESSAGES, stream=stream)
            assert caught.value.status_code == 503 and caught.value.code == "provider_unavailable"
            assert caught.value.response.headers["retry-after"]
        assert len(fake_ollama.chat_requests) == 1


def test_provider_down_is_a_503(fake_ollama):
    settings = make_settings(valid_api_keys=KEY, ollama_host="127.0.0.1", ollama_port=free_port())
    with running_app(settings) as app, client(app) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert caught.value.status_code == 503 and caught.value.type == "server_error"


def test_provider_timeout_is_a_503(fake_ollama):
    fake_ollama.hang = True
    settings = make_settings(ollama=fake_ollama, valid_api_keys=KEY, request_timeout=0.3)
    with running_app(settings) as app, client(app) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert caught.value.code == "provider_timeout"


def test_draining_service_refuses_new_completions(app):
    app.runtime.draining = True
    with client(app) as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert caught.value.status_code == 503 and caught.value.code == "shutting_down"
    app.runtime.draining = False


def test_provider_rejecting_the_request_is_a_400(fake_ollama):
    fake_ollama.fail_status = 400
    with running_app(make_settings(ollama=fake_ollama, valid_api_keys=KEY)) as app, client(app) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
        assert caught.value.code == "provider_rejected_request"
        wait_until(lambda: app.runtime.breakers["ollama"].state == "closed")


def test_early_errors_keep_the_keep_alive_connection_usable(fake_ollama):
    """A 401/429 answered before the body is read must not leave a connection the SDK reuses dead."""
    settings = make_settings(ollama=fake_ollama, valid_api_keys=KEY, completions_rate_per_min=1)
    with running_app(settings) as app:
        with client(app, key="wrong") as sdk:
            for _ in range(15):
                with pytest.raises(openai.AuthenticationError):
                    sdk.chat.completions.create(model="llama3.2", messages=MESSAGES * 3)
        with client(app) as sdk:
            sdk.chat.completions.create(model="llama3.2", messages=MESSAGES)
            for _ in range(15):
                with pytest.raises(openai.RateLimitError):
                    sdk.chat.completions.create(model="llama3.2", messages=MESSAGES * 3)
                assert sdk.models.list().data
