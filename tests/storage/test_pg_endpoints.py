"""Per-community endpoints in PostgreSQL mode: the PUT is stored (key encrypted) and used by the
interaction path, a new key reaches the endpoint, and a row written before base_url was validated
(credentials, a metadata address) is never called nor shown."""

from __future__ import annotations

from llm import endpoints as endpoints_module
from tests.storage.conftest import pg_settings, wait_ready
from tests.support import interaction_body, running_app
from tests.web.admin_support import ADMIN_KEY, AUTH, FERNET_KEY, recorded_logs


def settings_for(pg, fake_ollama, fake_router, **more):
    return pg_settings(pg, fake_ollama, fake_router, admin_api_keys=ADMIN_KEY, config_encryption_key=FERNET_KEY,
                       allowed_upstream_hosts="127.0.0.1", config_cache_ttl_s=0, **more)


def reply_to(app, fake_router, **fields) -> dict:
    before = len(fake_router.replies)
    app.post_interaction(interaction_body("hello there", **fields))
    return fake_router.wait_for_replies(before + 1)[before]["body"]


def test_a_stored_community_endpoint_and_its_new_key_are_used(pg, fake_ollama, fake_openai, fake_router):
    with running_app(settings_for(pg, fake_ollama, fake_router)) as app:
        wait_ready(app)
        fake_openai.api_key = "sk-pg-first"
        answer = app.http.put("/api/v1/ai/config?community_id=12", headers=AUTH, json={
            "provider": "waddleai", "base_url": fake_openai.url, "api_key": "sk-pg-first"})
        assert answer.status_code == 200 and answer.json()["data"]["persisted"] is True
        assert "sk-pg-first" not in pg.value("SELECT api_key_encrypted FROM ai_module_config WHERE community_id = 12")
        assert reply_to(app, fake_router, community_id=12)["response_data"]["provider"] == "waddleai"
        fake_openai.api_key = "sk-pg-second"
        assert app.http.put("/api/v1/ai/config?community_id=12", headers=AUTH,
                            json={"api_key": "sk-pg-second"}).status_code == 200
        assert reply_to(app, fake_router, community_id=12)["response_data"]["provider"] == "waddleai"
        assert [h["authorization"] for _, h, _ in fake_openai.chat_requests] == ["Bearer sk-pg-first",
                                                                                  "Bearer sk-pg-second"]
        assert fake_ollama.calls == 0
        refused = app.http.put("/api/v1/ai/config?community_id=12", headers=AUTH,
                               json={"base_url": "http://169.254.169.254/latest"})
        assert refused.status_code == 400 and refused.json()["error"]["details"][0]["field"] == "base_url"
        assert pg.value("SELECT base_url FROM ai_module_config WHERE community_id = 12") == fake_openai.url


def test_a_row_stored_before_validation_is_not_used_nor_shown(pg, fake_ollama, fake_openai, fake_router):
    with running_app(settings_for(pg, fake_ollama, fake_router)) as app:
        wait_ready(app)
        with_password = fake_openai.url.replace("http://", "http://admin:hunter2@")
        pg.query("INSERT INTO ai_module_config (community_id, provider, base_url) VALUES "
                 "(21, 'waddleai', $1), (22, 'ollama', 'http://169.254.169.254/latest')", with_password)
        shown = app.http.get("/api/v1/ai/config?community_id=21", headers=AUTH)
        assert shown.status_code == 200 and "hunter2" not in shown.text
        assert shown.json()["data"]["overrides"]["base_url"].startswith("http://***@127.0.0.1:")
        with recorded_logs(endpoints_module) as logs:
            for community in (21, 22):
                body = reply_to(app, fake_router, community_id=community)
                assert body["response_data"]["provider"] == "ollama" and body["response_data"]["fallback"] is False
        assert fake_openai.calls == 0
        reasons = [fields["error"] for _, _, fields in logs.calls if fields.get("result") == "refused"]
        assert len(reasons) == 2 and "credentials" in reasons[0] and "metadata" in reasons[1]
        assert "hunter2" not in logs.text()
