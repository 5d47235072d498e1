"""Per-community reply rules on PostgreSQL (§7, migration 0005): the PUT validates them, stores them
in ai_module_config, a new app instance on the same database reads them back, and they apply to
that community only: trigger languages, model per trigger, reply blocklist."""

from __future__ import annotations

import json
from typing import Any

import pytest

from interactions.fallback_texts import FALLBACK_TEXTS
from observability import metrics
from tests.storage.conftest import pg_settings, wait_ready
from tests.support import interaction_body, running_app
from tests.waiting import wait_until
from tests.web.admin_support import ADMIN_KEY, AUTH

CONFIG = "/api/v1/ai/config"
RULES = {"trigger_languages": ["en"], "model_by_trigger": {"greeting": "tiny-model", "raid": "raid-model"},
         "reply_blocklist": ["heck", "/fr[e3]{2}\\s*gift/"]}


def ignored() -> float:
    return metrics.REGISTRY.get_sample_value("ai_interactions_total", {"outcome": "ignored", "trigger": "none"}) or 0.0


def reply_to(router: Any, body: dict[str, Any]) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((r["body"] for r in list(router.replies) if r["body"]["session_id"] == body["session_id"]), None)
    return wait_until(find, message=f"the reply to {body['message_content']!r}")


def canned(language: str, kind: str) -> set[str]:
    return {"🤖 " + t.format(name="Viewer42") for t in FALLBACK_TEXTS[language][kind]}


@pytest.fixture
def settings(pg, fake_ollama, fake_router):
    return pg_settings(pg, fake_ollama, fake_router, admin_api_keys=ADMIN_KEY, config_cache_ttl_s=0)


@pytest.mark.parametrize(("field", "change"), [
    ("trigger_languages", {"trigger_languages": ["xx"]}),
    ("reply_blocklist", {"reply_blocklist": ["/(/"]}),
    ("model_by_trigger", {"model_by_trigger": {"a b": "m"}}),
])
def test_a_bad_rule_is_a_400_naming_its_field_and_nothing_is_stored(settings, pg, field, change):
    with running_app(settings) as app:
        wait_ready(app)
        response = app.http.put(f"{CONFIG}?community_id=31", headers=AUTH, json=change)
        assert response.status_code == 400, response.text
        assert any(d["field"].split(".")[0] == field for d in response.json()["error"]["details"])
    assert pg.value("SELECT count(*) FROM ai_module_config WHERE community_id = 31") == 0


def test_rules_are_stored_survive_a_new_instance_and_apply_to_their_community_only(
        settings, pg, fake_ollama, fake_router):
    with running_app(settings) as app:
        wait_ready(app)
        response = app.http.put(f"{CONFIG}?community_id=31", headers=AUTH, json=RULES)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["persisted"] is True
    row = pg.query("SELECT trigger_languages, model_by_trigger, reply_blocklist FROM ai_module_config "
                   "WHERE community_id = 31")[0]
    assert list(row["trigger_languages"]) == ["en"]
    assert json.loads(row["model_by_trigger"]) == RULES["model_by_trigger"]  # jsonb, as text here
    assert list(row["reply_blocklist"]) == RULES["reply_blocklist"]

    with running_app(settings) as app:  # a new instance on the same database
        wait_ready(app)
        data = app.http.get(f"{CONFIG}?community_id=31", headers=AUTH).json()["data"]
        assert data["persisted"] is True
        for name, value in RULES.items():
            assert data["overrides"][name] == value
            assert data["effective"][name] == value
        other = app.http.get(f"{CONFIG}?community_id=32", headers=AUTH).json()["data"]["effective"]
        assert "es" in other["trigger_languages"] and other["reply_blocklist"] == []

        before = ignored()
        app.post_interaction(interaction_body("hola", user_id="es-31", community_id=31))
        wait_until(lambda: ignored() == before + 1, message="hola ignored in community 31")

        fake_ollama.reply = "heck, bienvenido!"
        hola_elsewhere = interaction_body("hola", user_id="es-32", community_id=32)
        app.post_interaction(hola_elsewhere)
        assert reply_to(fake_router, hola_elsewhere)["chat_message"] == "🤖 heck, bienvenido!"
        assert fake_ollama.last_body["model"] == "llama3.2"

        fake_ollama.reply = "FREE gift for you, heck"
        hello_here = interaction_body("hello", user_id="en-31", community_id=31)
        app.post_interaction(hello_here)
        payload = reply_to(fake_router, hello_here)
        assert payload["chat_message"] in canned("en", "greeting")  # the community's list moderated it
        assert payload["response_data"]["fallback"] is True
        assert fake_ollama.last_body["model"] == "tiny-model"
        wait_until(lambda: pg.value("SELECT outcome FROM ai_interaction_queue WHERE id = $1",
                                    payload["interaction_id"]) == "moderated", message="outcome moderated stored")
        # A moderated reply is not history.
        assert pg.value("SELECT count(*) FROM ai_conversation_context WHERE user_id = 'en-31'") == 0

        fake_ollama.reply = "Welcome, raiders!"
        raid = interaction_body("", user_id="raider", community_id=31, message_type="raid")
        app.post_interaction(raid)
        assert reply_to(fake_router, raid)["response_data"]["model"] == "raid-model"
        assert len(fake_router.replies) == 3  # nothing for the Spanish greeting in community 31

        reset = app.http.put(f"{CONFIG}?community_id=31", headers=AUTH,
                             json={name: None for name in RULES}).json()["data"]
        assert "es" in reset["effective"]["trigger_languages"] and reset["effective"]["reply_blocklist"] == []
    row = pg.query("SELECT trigger_languages, model_by_trigger, reply_blocklist FROM ai_module_config "
                   "WHERE community_id = 31")[0]
    assert (row["trigger_languages"], row["model_by_trigger"], row["reply_blocklist"]) == (None, None, None)
