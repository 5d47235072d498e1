"""WaddleAI behind real proxies' ways (the fake told to answer like LiteLLM, Portkey, vLLM), through
the app and the official openai SDK: health without /healthz, served models listed and retrievable,
"no such model" as 404 whatever the upstream's status, a refusal of our headers as 502 (both paths).
The same against a real LiteLLM proxy: tests/integration/."""

from __future__ import annotations

import openai
import pytest

from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until

KEY = "test-key"
MESSAGES = [{"role": "user", "content": "hi there"}]


def client(app) -> openai.OpenAI:
    return openai.OpenAI(base_url=app.url + "/v1", api_key=KEY, max_retries=0)


def waddleai_app(fake_openai, **overrides):
    settings = make_settings(openai=fake_openai, ai_provider="waddleai", valid_api_keys=KEY, **overrides)
    return running_app(settings)


def test_a_proxy_without_healthz_is_healthy_and_its_models_are_served(fake_openai):
    fake_openai.healthz = False  # LiteLLM, vLLM
    fake_openai.models = ["mock-answer", "mock-stream"]
    with waddleai_app(fake_openai) as app, client(app) as sdk:
        wait_until(lambda: app.runtime.health.status("waddleai") is True)
        assert [m.id for m in sdk.models.list()] == ["auto", "mock-answer", "mock-stream"]
        served = sdk.models.retrieve("mock-stream")
        assert (served.id, served.owned_by) == ("mock-stream", "waddleai")
        assert sdk.models.retrieve("waddleai/mock-answer").id == "waddleai/mock-answer"


def test_the_models_listed_are_capped_per_provider(fake_openai):
    fake_openai.models = [f"m{i}" for i in range(30)]
    with waddleai_app(fake_openai) as app, client(app) as sdk:
        app.runtime.catalog.max_per_provider = 10
        assert [m.id for m in sdk.models.list()] == ["auto"] + [f"m{i}" for i in range(10)]


@pytest.mark.parametrize("style", ["litellm", "openai", "vllm"])
@pytest.mark.parametrize("stream", [False, True])
def test_no_such_model_is_a_404_whatever_the_upstream_status(fake_openai, style, stream):
    fake_openai.strict_models, fake_openai.unknown_model_as = True, style
    with waddleai_app(fake_openai) as app, client(app) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.chat.completions.create(model="nope", messages=MESSAGES, stream=stream)
        assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
        assert app.runtime.breakers["waddleai"].consecutive_failures == 0


@pytest.mark.parametrize("stream", [False, True])
def test_portkey_refusing_our_headers_is_a_502_not_the_callers_fault(fake_openai, stream):
    fake_openai.portkey = True  # WADDLEAI_EXTRA_HEADERS unset: no x-portkey-provider
    with waddleai_app(fake_openai) as app, client(app) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
        assert caught.value.status_code == 502 and caught.value.code == "upstream_misconfigured"
        assert caught.value.type == "server_error" and "not a problem with your request" in caught.value.message
        assert "x-portkey" not in caught.value.message, "the upstream's words go to our log, not to callers"
        assert app.runtime.breakers["waddleai"].consecutive_failures == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_a_502(fake_openai, status):
    fake_openai.fail_status = status
    with waddleai_app(fake_openai) as app, client(app) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert caught.value.status_code == 502 and caught.value.code == "upstream_misconfigured"


def test_portkey_with_its_headers_answers(fake_openai):
    fake_openai.portkey = True
    headers = '{"x-portkey-provider": "openai", "x-portkey-api-key": "pk-secret-key"}'
    with waddleai_app(fake_openai, waddleai_extra_headers=headers) as app, client(app) as sdk:
        wait_until(lambda: app.runtime.health.status("waddleai") is True)
        answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.choices[0].message.content == fake_openai.reply
        assert "gpt-4o-mini" in [m.id for m in sdk.models.list()]
    paths = {path for path, _, _ in fake_openai.requests}
    assert {"/healthz", "/v1/models", "/v1/chat/completions"} <= paths
    assert all(h.get("x-portkey-provider") == "openai" and h.get("x-portkey-api-key") == "pk-secret-key"
               for _, h, _ in fake_openai.requests), "on every call: health and model listing included"


def test_a_misconfigured_primary_fails_over_on_the_interaction_path(fake_openai, fake_ollama, fake_router):
    fake_openai.portkey = True
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, router=fake_router,
                             ai_provider="waddleai", fallback_provider="ollama")
    with running_app(settings) as app:
        wait_until(lambda: app.runtime.health.status("waddleai") is False)
        app.post_interaction(interaction_body("hello"))
        reply = fake_router.wait_for_replies(1)[0]["body"]
    data = reply["response_data"]
    assert (data["provider"], data["fallback"]) == ("ollama", False)
