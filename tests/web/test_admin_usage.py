"""GET /api/v1/ai/usage in memory mode: token sums per community, provider, model and day."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.web.admin_support import ADMIN_KEY, AUTH
from tests.support import interaction_body, make_settings, running_app


@pytest.fixture
def app(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY)
    with running_app(settings) as handle:
        yield handle


def test_usage_counts_the_tokens_providers_reported(app, fake_ollama, fake_router):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 30, 9
    for community in (5, 5, 6, None):
        app.post_interaction(interaction_body("hello", community_id=community))
    fake_router.wait_for_replies(4)
    data = app.http.get("/api/v1/ai/usage?community_id=5", headers=AUTH).json()["data"]
    assert data["persisted"] is False
    assert data["rows"] == [{"community_id": 5, "provider": "ollama", "model": "llama3.2",
                             "day": data["rows"][0]["day"],
                             "requests": 2, "prompt_tokens": 60, "completion_tokens": 18, "total_tokens": 78}]
    everything = app.http.get("/api/v1/ai/usage", headers=AUTH).json()["data"]
    assert everything["totals"] == {"requests": 4, "prompt_tokens": 120, "completion_tokens": 36,
                                    "total_tokens": 156}
    assert {r["community_id"] for r in everything["rows"]} == {0, 5, 6}
    tomorrow = (date.fromisoformat(data["rows"][0]["day"]) + timedelta(days=1)).isoformat()
    later = app.http.get(f"/api/v1/ai/usage?since={tomorrow}", headers=AUTH).json()["data"]
    assert later["rows"] == [] and later["totals"]["total_tokens"] == 0
    assert app.http.get(f"/api/v1/ai/usage?since={tomorrow}T00:00:00Z", headers=AUTH).json()["data"]["rows"] == []


@pytest.mark.parametrize("query,field", [("since=yesterday", "since"), ("community_id=-1", "community_id")])
def test_bad_usage_queries_are_a_400_naming_the_field(app, query, field):
    response = app.http.get(f"/api/v1/ai/usage?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field


def test_usage_needs_the_admin_key(app):
    assert app.http.get("/api/v1/ai/usage").status_code == 401


def test_openai_api_usage_is_recorded_streamed_or_not(fake_ollama):
    import openai

    settings = make_settings(ollama=fake_ollama, admin_api_keys=ADMIN_KEY, valid_api_keys="oa-key")
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 11, 4
    with running_app(settings) as app:
        with openai.OpenAI(base_url=app.url + "/v1", api_key="oa-key", max_retries=0) as sdk:
            sdk.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
            for _ in sdk.chat.completions.create(model="llama3.2", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]):
                pass
        data = app.http.get("/api/v1/ai/usage?community_id=0", headers=AUTH).json()["data"]
    assert data["totals"] == {"requests": 2, "prompt_tokens": 22, "completion_tokens": 8, "total_tokens": 30}
    assert [(r["provider"], r["model"]) for r in data["rows"]] == [("ollama", "llama3.2")]
