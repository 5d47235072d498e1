"""DELETE /api/v1/ai/context/{platform}/{user_id} (§9) in memory mode."""

from __future__ import annotations

import pytest

from tests.web.admin_support import ADMIN_KEY, AUTH
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until


@pytest.fixture
def app(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY, worker_count=1)
    with running_app(settings) as handle:
        yield handle


def test_erase_forgets_the_users_context_and_drops_their_queued_interactions(app, fake_ollama, fake_router):
    for text in ("hello", "what's up?"):
        app.post_interaction(interaction_body(text, user_id="erase-me"))
    app.post_interaction(interaction_body("hello", user_id="keep-me"))
    fake_router.wait_for_replies(3)
    fake_ollama.hang = True  # the one worker is now stuck, so what follows stays queued
    app.post_interaction(interaction_body("hello", user_id="keep-me"))
    wait_until(lambda: len(fake_ollama.chat_requests) == 4, message="the worker busy")
    for _ in range(2):
        app.post_interaction(interaction_body("hello again", user_id="erase-me"))
    app.post_interaction(interaction_body("hello", user_id="erase-me", platform="discord"))
    response = app.http.delete("/api/v1/ai/context/TWITCH/erase-me", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {
        "platform": "twitch", "context_rows": 2, "queued_rows": 2, "persisted": False}}
    assert app.runtime.queue.depth() == 1  # the discord one stays
    again = app.http.delete("/api/v1/ai/context/twitch/erase-me", headers=AUTH).json()["data"]
    assert (again["context_rows"], again["queued_rows"]) == (0, 0)
    assert app.http.delete("/api/v1/ai/context/twitch/keep-me", headers=AUTH).json()["data"]["context_rows"] == 1
    fake_ollama.release()  # let the stuck call end now rather than at its timeout during shutdown


def test_erase_needs_the_admin_key(app):
    assert app.http.delete("/api/v1/ai/context/twitch/someone").status_code == 401
    too_long = app.http.delete(f"/api/v1/ai/context/twitch/{'u' * 256}", headers=AUTH)
    assert too_long.status_code == 400 and too_long.json()["error"]["details"][0]["field"] == "user_id"
