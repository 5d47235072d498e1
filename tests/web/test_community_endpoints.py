"""Per-community endpoints in the running app, memory mode (§5, §7): the service runs on the
Ollama fake; a community names the OpenAI fake (allowed through ALLOWED_UPSTREAM_HOSTS=127.0.0.1)
with its own key. Its interactions go there, with that key; when it fails, the service's Ollama
answers and only the community endpoint's breaker opens; a new key takes effect; bad URLs are a
400 naming base_url; neither the key nor credentials are ever shown."""

from __future__ import annotations

import pytest

from llm import endpoints as endpoints_module
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until
from tests.web.admin_support import ADMIN_KEY, AUTH, FERNET_KEY, recorded_logs

KEY = "sk-community-7-secret"


@pytest.fixture
def settings(fake_ollama, fake_router):
    return make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                         config_encryption_key=FERNET_KEY, allowed_upstream_hosts="127.0.0.1",
                         breaker_failure_threshold=2)


@pytest.fixture
def app(settings):
    with running_app(settings) as handle:
        yield handle


def use_own_endpoint(app, fake_openai, community: int = 7, key: str = KEY, **more) -> None:
    body = {"provider": "waddleai", "base_url": fake_openai.url, "api_key": key, "model": "gpt-4o-mini", **more}
    response = app.http.put(f"/api/v1/ai/config?community_id={community}", headers=AUTH, json=body)
    assert response.status_code == 200, response.text


def reply_to(app, fake_router, message: str = "hello there", **fields) -> dict:
    before = len(fake_router.replies)
    app.post_interaction(interaction_body(message, **fields))
    return fake_router.wait_for_replies(before + 1)[before]["body"]


def test_a_communitys_calls_go_to_its_own_endpoint_with_its_key(app, fake_ollama, fake_openai, fake_router):
    fake_openai.api_key = KEY  # the fake answers 401 to any other key
    use_own_endpoint(app, fake_openai)
    own = reply_to(app, fake_router, community_id=7)
    assert own["response_data"]["provider"] == "waddleai" and own["response_data"]["fallback"] is False
    assert own["response_data"]["model"] == "gpt-4o-mini"
    _, headers, body = fake_openai.chat_requests[-1]
    assert headers["authorization"] == f"Bearer {KEY}" and body["model"] == "gpt-4o-mini"
    assert fake_ollama.calls == 0
    other = reply_to(app, fake_router, community_id=8)  # another community: the service's provider
    assert other["response_data"]["provider"] == "ollama" and fake_ollama.calls == 1
    assert len(fake_openai.chat_requests) == 1
    ready = app.http.get("/ready")
    endpoints = ready.json()["community_endpoints"]
    assert [name.split("#")[0] for name in endpoints] == [f"waddleai@127.0.0.1:{fake_openai.url.rsplit(':', 1)[1]}"]
    assert KEY not in ready.text


def test_a_failing_community_endpoint_falls_back_and_opens_only_its_own_breaker(app, fake_ollama, fake_openai,
                                                                                fake_router):
    fake_openai.fail_status = 500
    use_own_endpoint(app, fake_openai)
    for _ in range(3):
        body = reply_to(app, fake_router, community_id=7)
        assert body["response_data"]["provider"] == "ollama" and body["response_data"]["fallback"] is False
    assert fake_openai.calls == 2  # BREAKER_FAILURE_THRESHOLD=2: the third call never reached it
    assert fake_ollama.last_body["model"] == "llama3.2"  # the service's default, not the community's model
    ready = app.http.get("/ready").json()
    (name, state), = ready["community_endpoints"].items()
    assert state["breaker"] == "open" and ready["providers"]["ollama"]["breaker"] == "closed"
    status = app.http.get("/api/v1/ai/status").json()["data"]
    assert status["community_endpoints"][name]["breaker"] == "open"
    metrics = app.http.get("/metrics").text
    assert f'ai_circuit_breaker_state{{provider="{name}"}} 2.0' in metrics
    assert 'ai_circuit_breaker_state{provider="ollama"} 0.0' in metrics
    assert f'ai_provider_requests_total{{model="gpt-4o-mini",provider="{name}",result="bad_status"}} 2.0' in metrics
    assert KEY not in metrics


def test_a_new_key_takes_effect_and_the_old_client_is_closed(fake_ollama, fake_openai, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             config_encryption_key=FERNET_KEY, allowed_upstream_hosts="127.0.0.1",
                             community_endpoints_max=1)
    with running_app(settings) as app:
        fake_openai.api_key = "sk-old-key"
        use_own_endpoint(app, fake_openai, key="sk-old-key")
        assert reply_to(app, fake_router, community_id=7)["response_data"]["provider"] == "waddleai"
        (old,) = app.runtime.endpoints.clients()
        fake_openai.api_key = "sk-new-key"
        rotated = app.http.put("/api/v1/ai/config?community_id=7", headers=AUTH, json={"api_key": "sk-new-key"})
        assert rotated.status_code == 200
        assert reply_to(app, fake_router, community_id=7)["response_data"]["provider"] == "waddleai"
        assert [h["authorization"] for _, h, _ in fake_openai.chat_requests] == ["Bearer sk-old-key",
                                                                                  "Bearer sk-new-key"]
        (new,) = app.runtime.endpoints.clients()
        assert new is not old
        wait_until(lambda: old.closed, message="the old key's client closed")
        assert not new.closed
    assert new.closed  # at shutdown


BAD_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://metadata.google.internal/", "metadata"),
    ("http://127.0.0.2:11434", "loopback"),  # 127.0.0.1 is allowed here, 127.0.0.2 is not
    ("http://[::1]:11434", "loopback"),
    ("http://localhost:11434", "loopback"),  # a name resolving to loopback
    ("http://10.0.0.5/v1", "private"),
    ("http://192.168.1.20:8000", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://169.254.3.4/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("https://user:hunter2@93.184.216.34/v1", "credentials"),
    ("https://93.184.216.34/v1?key=hunter2", "query"),
    ("ftp://93.184.216.34/", "http:// or https://"),
]


@pytest.mark.parametrize("url,reason", BAD_URLS, ids=[u for u, _ in BAD_URLS])
def test_a_base_url_breaking_the_rules_is_a_400_naming_it(app, url, reason):
    response = app.http.put("/api/v1/ai/config?community_id=3", headers=AUTH, json={"base_url": url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    (detail,) = error["details"]
    assert detail["field"] == "base_url" and reason in detail["message"]
    assert "hunter2" not in response.text
    shown = app.http.get("/api/v1/ai/config?community_id=3", headers=AUTH).json()["data"]
    assert shown["overrides"] == {"api_key_set": False}  # nothing stored


def test_an_allowed_host_and_a_public_address_are_accepted(app):
    for url in ("http://127.0.0.1:11434", "https://93.184.216.34/v1/"):
        response = app.http.put("/api/v1/ai/config?community_id=3", headers=AUTH, json={"base_url": url})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["overrides"]["base_url"] == url.rstrip("/")


def test_a_provider_the_service_does_not_run_needs_a_base_url(app, fake_openai):
    refused = app.http.put("/api/v1/ai/config?community_id=4", headers=AUTH, json={"provider": "waddleai"})
    assert refused.status_code == 400 and refused.json()["error"]["details"][0]["field"] == "provider"
    assert "base_url" in refused.json()["error"]["details"][0]["message"]
    accepted = app.http.put("/api/v1/ai/config?community_id=4", headers=AUTH,
                            json={"provider": "waddleai", "base_url": fake_openai.url})
    assert accepted.status_code == 200


def test_neither_the_key_nor_credentials_are_ever_shown_and_a_stored_bad_url_is_not_used(
        app, fake_ollama, fake_openai, fake_router):
    use_own_endpoint(app, fake_openai, community=5)
    for path in ("/api/v1/ai/config?community_id=5", "/api/v1/ai/config", "/ready", "/api/v1/ai/status", "/metrics"):
        text = app.http.get(path, headers=AUTH).text
        assert KEY not in text and "api_key_encrypted" not in text, path
    # a row stored before base_url was validated: credentials in it, pointing at the fake
    legacy = fake_openai.url.replace("http://", "http://admin:hunter2@")
    app.server.call(app.runtime.config_source.update(5, {"base_url": legacy}))
    shown = app.http.get("/api/v1/ai/config?community_id=5", headers=AUTH)
    assert "hunter2" not in shown.text and "admin" not in shown.text
    assert shown.json()["data"]["effective"]["base_url"] == fake_openai.url.replace("http://", "http://***@")
    with recorded_logs(endpoints_module) as logs:
        body = reply_to(app, fake_router, community_id=5)
    assert body["response_data"]["provider"] == "ollama" and fake_openai.calls == 0
    refused = [fields for level, _, fields in logs.calls if fields.get("result") == "refused"]
    assert len(refused) == 1 and "credentials" in refused[0]["error"]
    assert "hunter2" not in logs.text() and KEY not in logs.text()
