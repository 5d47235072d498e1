"""GET/PUT /api/v1/ai/config (§7) in memory mode: auth, validation, secrets, and real effect."""

from __future__ import annotations

import pytest

from web import admin
from tests.web.admin_support import ADMIN_KEY, AUTH, FERNET_KEY, recorded_logs
from tests.support import interaction_body, make_settings, running_app, settled
from tests.waiting import wait_until


@pytest.fixture
def app(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             config_encryption_key=FERNET_KEY)
    with running_app(settings) as handle:
        yield handle


def test_without_admin_keys_every_admin_endpoint_says_which_variable_to_set(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router)) as app:
        for method, path in (("GET", "/api/v1/ai/config"), ("PUT", "/api/v1/ai/config"),
                             ("DELETE", "/api/v1/ai/context/twitch/u1"), ("GET", "/api/v1/ai/usage")):
            body = {"json": {}, "headers": {**AUTH, "Connection": "close"}} if method == "PUT" else {"headers": AUTH}
            response = app.http.request(method, path, **body)
            assert response.status_code == 401, path
            assert "ADMIN_API_KEYS" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": ADMIN_KEY}])
def test_a_missing_or_wrong_admin_key_is_a_401(app, headers):
    response = app.http.get("/api/v1/ai/config", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_global_configuration_is_shown_with_both_header_styles(app):
    for headers in (AUTH, {"X-API-Key": ADMIN_KEY}):
        data = app.http.get("/api/v1/ai/config", headers=headers).json()["data"]
        assert data["community_id"] is None and data["persisted"] is False
        assert data["effective"]["provider"] == "ollama" and data["effective"]["temperature"] == 0.7
        assert data["effective"]["triggers"]["greetings"][:2] == ["hi", "hello"]
        assert data["overrides"] == {"api_key_set": False}


def test_a_community_configuration_changes_how_its_interactions_are_processed(app, fake_ollama, fake_router):
    change = {"model": "community-model", "temperature": 0.1, "max_tokens": 42,
              "system_prompt": "You are Captain Waddle, a pirate penguin.",
              "triggers": {"greetings": ["ahoy"]}}
    response = app.http.put("/api/v1/ai/config?community_id=7", headers=AUTH, json=change)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["persisted"] is False and data["community_id"] == 7
    assert data["effective"]["model"] == "community-model" and data["effective"]["triggers"]["greetings"] == ["ahoy"]
    assert data["effective"]["triggers"]["farewells"][0] == "bye"  # not named: inherited
    app.post_interaction(interaction_body("ahoy there", community_id=7))
    fake_router.wait_for_replies(1)
    body = fake_ollama.last_body
    assert body["model"] == "community-model"
    assert body["options"] == {"temperature": 0.1, "num_predict": 42}
    assert body["messages"][0]["content"].startswith("You are Captain Waddle")
    app.post_interaction(interaction_body("hello there", community_id=7))  # not a greeting for 7
    app.post_interaction(interaction_body("hello there", community_id=8))  # other communities: global
    fake_router.wait_for_replies(2)
    wait_until(lambda: settled(app))
    assert len(fake_router.replies) == 2
    assert fake_ollama.last_body["model"] == "llama3.2"


def test_a_community_cooldown_applies_to_that_community_only(app, fake_router):
    app.http.put("/api/v1/ai/config?community_id=3", headers=AUTH, json={"user_cooldown_s": 600})
    for community in (3, 3, 4, 4):
        app.post_interaction(interaction_body("hello", community_id=community))
    fake_router.wait_for_replies(3)
    wait_until(lambda: settled(app))
    assert len(fake_router.replies) == 3


def test_global_overrides_apply_to_every_community_and_null_inherits_again(app):
    app.http.put("/api/v1/ai/config", headers=AUTH, json={"system_prompt": "Global persona."})
    app.http.put("/api/v1/ai/config?community_id=5", headers=AUTH, json={"temperature": 1.5})
    five = app.http.get("/api/v1/ai/config?community_id=5", headers=AUTH).json()["data"]
    assert five["effective"]["system_prompt"] == "Global persona." and five["effective"]["temperature"] == 1.5
    assert five["overrides"] == {"temperature": 1.5, "api_key_set": False}
    cleared = app.http.put("/api/v1/ai/config?community_id=5", headers=AUTH, json={"temperature": None})
    assert cleared.json()["data"]["effective"]["temperature"] == 0.7


BAD = [
    ("temperature", {"temperature": 2.5}),
    ("max_tokens", {"max_tokens": 0}),
    ("provider", {"provider": "skynet"}),
    ("provider", {"provider": "waddleai"}),  # valid name, but not configured on this service
    ("temprature", {"temprature": 0.5}),
    ("triggers.greetings", {"triggers": {"greetings": "hi"}}),
    ("triggers.colour", {"triggers": {"colour": "red"}}),
    ("base_url", {"base_url": "ftp://example"}),
    ("user_cooldown_s", {"user_cooldown_s": -1}),
]


@pytest.mark.parametrize("field,body", BAD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD)])
def test_a_bad_field_is_a_400_naming_it(app, field, body):
    response = app.http.put("/api/v1/ai/config?community_id=2", headers=AUTH, json=body)
    assert response.status_code == 400, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize("query", ["community_id=abc", "community_id=0", "community_id=-3"])
def test_a_bad_community_id_is_a_400(app, query):
    response = app.http.get(f"/api/v1/ai/config?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "community_id"


def test_malformed_json_is_a_400(app):
    response = app.http.put("/api/v1/ai/config", headers={**AUTH, "Content-Type": "application/json"},
                            content=b"{nope")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_an_api_key_is_stored_encrypted_and_never_shown_nor_logged(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             config_encryption_key=FERNET_KEY,
                             allowed_upstream_hosts="llm.example.com")  # not resolved: no DNS here
    with recorded_logs(admin) as logs, running_app(settings) as app:
        check_secret_handling(app)
    assert "configuration updated" in logs.text()
    assert "sk-community-secret" not in logs.text()


def check_secret_handling(app) -> None:
    secret = "sk-community-secret-0123456789"
    response = app.http.put("/api/v1/ai/config?community_id=9", headers=AUTH,
                            json={"api_key": secret, "base_url": "https://llm.example.com/"})
    assert response.status_code == 200
    shown = app.http.get("/api/v1/ai/config?community_id=9", headers=AUTH)
    for answer in (response, shown):
        assert secret not in answer.text
        data = answer.json()["data"]
        assert data["overrides"]["api_key_set"] is True and data["effective"]["api_key_set"] is True
        assert data["effective"]["base_url"] == "https://llm.example.com"
        assert "api_key_encrypted" not in answer.text
    stored = app.runtime.config_source._overrides[9]["api_key_encrypted"]
    assert secret not in stored and app.runtime.cipher.decrypt(stored) == secret
    cleared = app.http.put("/api/v1/ai/config?community_id=9", headers=AUTH, json={"api_key": None})
    assert cleared.json()["data"]["overrides"]["api_key_set"] is False


def test_without_an_encryption_key_an_api_key_is_refused(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY)
    with running_app(settings) as app:
        response = app.http.put("/api/v1/ai/config?community_id=1", headers=AUTH, json={"api_key": "sk-x"})
        assert response.status_code == 409
        assert "CONFIG_ENCRYPTION_KEY" in response.json()["error"]["message"]
        assert response.json()["error"]["details"][0]["field"] == "api_key"
        assert app.http.put("/api/v1/ai/config?community_id=1", headers=AUTH, json={"model": "m"}).status_code == 200


def test_a_bad_encryption_key_stops_start_up_naming_the_variable():
    from app import create_app
    from config.settings import ConfigError

    with pytest.raises(ConfigError, match="CONFIG_ENCRYPTION_KEY"):
        create_app(make_settings(config_encryption_key="not-a-fernet-key"))
