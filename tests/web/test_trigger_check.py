"""POST /api/v1/ai/triggers/check: the dry run of §4 for any community, admin key only."""

from __future__ import annotations

import pytest

from tests.support import make_settings, running_app
from tests.web.admin_support import ADMIN_KEY, AUTH

CHECK = "/api/v1/ai/triggers/check"


@pytest.fixture
def app(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             model_by_trigger="greeting=small-model")
    with running_app(settings) as handle:
        yield handle


@pytest.mark.parametrize(("message", "trigger", "language", "word"), [
    ("hola chat", "greeting", "es", "hola"),
    ("こんにちは皆さん", "greeting", "ja", "こんにちは"),
    ("Comment ça va ?", "question", "fr", "?"),
    ("@bob hi", None, "en", "@bob"),
    ("just chatting", None, None, None),
])
def test_the_dry_run_says_what_would_fire(app, message, trigger, language, word) -> None:
    response = app.http.post(CHECK, json={"message": message}, headers=AUTH)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["trigger"], data["language"], data["word"]) == (trigger, language, word)
    assert data["would_reply"] is (trigger is not None)
    assert data["reason"]


def test_it_names_the_model_a_reply_would_use(app) -> None:
    greeting = app.http.post(CHECK, json={"message": "hello"}, headers=AUTH).json()["data"]
    question = app.http.post(CHECK, json={"message": "why?"}, headers=AUTH).json()["data"]
    assert greeting["model"] == "small-model"
    assert question["model"] is None  # the configured model


def test_events_and_the_bots_own_messages(app) -> None:
    raid = app.http.post(CHECK, json={"message": "", "message_type": "raid"}, headers=AUTH).json()["data"]
    own = app.http.post(CHECK, json={"message": "hi", "username": "WaddleBot"}, headers=AUTH).json()["data"]
    assert raid["trigger"] == "event"
    assert own["trigger"] is None and "bot" in own["reason"]


def test_a_communitys_own_languages_and_words_are_used(app) -> None:
    put = app.http.put("/api/v1/ai/config", params={"community_id": 7}, headers=AUTH,
                       json={"trigger_languages": ["en"], "triggers": {"greetings": ["ahoy"]}})
    assert put.status_code == 200, put.text
    community = app.http.post(CHECK, json={"message": "hola", "community_id": 7}, headers=AUTH).json()["data"]
    everyone = app.http.post(CHECK, json={"message": "hola"}, headers=AUTH).json()["data"]
    ahoy = app.http.post(CHECK, json={"message": "ahoy mates", "community_id": 7}, headers=AUTH).json()["data"]
    assert community["trigger"] is None and community["trigger_languages"] == ["en"]
    assert everyone["trigger"] == "greeting"
    assert ahoy["trigger"] == "greeting"


@pytest.mark.parametrize(("body", "field"), [({}, "message"), ({"message": 5}, "message"),
                                              ({"message": "hi", "community_id": 0}, "community_id"),
                                              ({"message": "hi", "extra": 1}, "extra")])
def test_bad_input_is_a_400_naming_the_field(app, body, field) -> None:
    response = app.http.post(CHECK, json=body, headers=AUTH)
    assert response.status_code == 400
    assert field in response.text


def test_the_admin_key_is_required(app) -> None:
    assert app.http.post(CHECK, json={"message": "hi"}).status_code == 401
