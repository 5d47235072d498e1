"""POST /api/v1/ai/interaction: the ACK, validation, auth, limits and dedupe (§2)."""

from __future__ import annotations

import json

import pytest

from observability import metrics
from tests.support import interaction_body, make_settings, running_app, settled
from tests.waiting import wait_until


def outcome_count(outcome: str) -> float:
    total = 0.0
    for metric in metrics.REGISTRY.collect():
        if metric.name == "ai_interactions":
            for sample in metric.samples:
                if sample.name == "ai_interactions_total" and sample.labels["outcome"] == outcome:
                    total += sample.value
    return total


@pytest.fixture
def app(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, max_message_chars=50)) as handle:
        yield handle


def test_accepts_with_202_and_an_interaction_id(app):
    response = app.post_interaction(interaction_body("just chatting"))
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True
    assert body["data"]["message"] == "Processing request"
    assert body["data"]["session_id"].startswith("sess-")
    assert len(body["data"]["interaction_id"]) >= 32
    assert body["data"]["duplicate"] is False
    assert body["timestamp"].endswith("Z")
    assert response.headers["x-request-id"]


def test_unknown_fields_are_ignored(app):
    assert app.post_interaction(interaction_body("hey", surprise={"x": 1}, another=3)).status_code == 202


BAD_BODIES = [
    ("session_id", lambda b: b.pop("session_id")),
    ("session_id", lambda b: b.update(session_id="")),
    ("session_id", lambda b: b.update(session_id=12345)),
    ("user_id", lambda b: b.update(user_id="u" * 256)),
    ("entity_id", lambda b: b.pop("entity_id")),
    ("platform", lambda b: b.update(platform="myspace")),
    ("platform", lambda b: b.pop("platform")),
    ("username", lambda b: b.update(username=None)),
    ("display_name", lambda b: b.update(display_name="d" * 256)),
    ("message_type", lambda b: b.update(message_type="t" * 101)),
    ("message_content", lambda b: b.update(message_content="x" * 51)),
    ("message_content", lambda b: b.update(message_content=["hi"])),
    ("message_id", lambda b: b.update(message_id="m" * 256)),
    ("channel_id", lambda b: b.update(channel_id="c" * 256)),
    ("execution_id", lambda b: b.update(execution_id={"a": 1})),
    ("community_id", lambda b: b.update(community_id=0)),
    ("community_id", lambda b: b.update(community_id="7")),
    ("community_id", lambda b: b.update(community_id=1.5)),
    ("metadata", lambda b: b.update(metadata="not an object")),
    ("metadata", lambda b: b.update(metadata={"blob": "x" * 5000})),
]


@pytest.mark.parametrize("field,mutate", BAD_BODIES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_BODIES)])
def test_bad_field_is_a_400_naming_the_field(app, field, mutate):
    body = interaction_body("hello")
    mutate(body)
    response = app.post_interaction(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert response.json()["success"] is False
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]]
    assert field in error["message"]


def test_every_bad_field_is_named_at_once(app):
    body = interaction_body("hello", platform="myspace", community_id=-1)
    del body["user_id"]
    fields = {d["field"] for d in app.post_interaction(body).json()["error"]["details"]}
    assert {"platform", "community_id", "user_id"} <= fields


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2,3]", b"\"a string\"", b"{\"session_id\": \"\xff\xfe\"}"])
def test_malformed_or_non_object_json_is_a_400(app, raw):
    response = app.http.post("/api/v1/ai/interaction", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in {"invalid_json", "validation_error"}
    assert error["details"] and all("field" in d for d in error["details"])


def test_wrong_content_type_is_a_415(app):
    response = app.http.post("/api/v1/ai/interaction", content=json.dumps(interaction_body()),
                             headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"]["details"][0]["field"] == "Content-Type"


def test_body_over_max_body_bytes_is_a_413(app):
    body = interaction_body("hi", metadata={}, padding="x" * (70 * 1024))
    response = app.post_interaction(body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_chat_text_reaches_the_llm_unescaped(app, fake_ollama, fake_router):
    text = "hello <b>chat</b> & 'friends' \"quoted\" <3"
    app.post_interaction(interaction_body(text))
    fake_router.wait_for_replies(1)
    sent = fake_ollama.requests[-1][2]["messages"][-1]["content"]
    assert sent.endswith(text)


def test_duplicate_message_id_is_acknowledged_but_answered_once(app, fake_router):
    body = interaction_body("hello everyone")
    first = app.post_interaction(body).json()
    before = outcome_count("duplicate")
    second = app.post_interaction(body)
    assert second.status_code == 202
    assert second.json()["duplicate"] is True
    assert second.json()["data"]["interaction_id"] == first["data"]["interaction_id"]
    fake_router.wait_for_replies(1)
    assert outcome_count("duplicate") == before + 1
    wait_until(lambda: settled(app))
    assert len(fake_router.replies) == 1


def test_without_message_id_same_session_type_and_content_dedupes(app, fake_router):
    body = interaction_body("hello again")
    del body["message_id"]
    app.post_interaction(body)
    assert app.post_interaction(dict(body)).json()["duplicate"] is True
    other = dict(body, message_content="hello once more")
    assert app.post_interaction(other).json()["data"]["duplicate"] is False
    fake_router.wait_for_replies(2)


def test_draining_answers_503_with_retry_after(app):
    app.runtime.draining = True
    response = app.post_interaction(interaction_body("hi"))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["error"]["code"] == "shutting_down"
    assert app.http.get("/ready").status_code == 503
    app.runtime.draining = False


def test_unknown_route_uses_the_error_shape(app):
    response = app.http.get("/api/v1/ai/nope")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": {"code": "not_found", "message": response.json()["error"]["message"], "details": []}}


class TestServiceKey:
    @pytest.fixture
    def keyed(self, fake_ollama, fake_router):
        settings = make_settings(ollama=fake_ollama, router=fake_router, router_service_key="s3cret-router-key")
        with running_app(settings) as handle:
            yield handle

    @pytest.mark.parametrize("headers", [{}, {"X-Service-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                                         {"Authorization": "Basic s3cret-router-key"}])
    def test_missing_or_wrong_key_is_401(self, keyed, headers):
        response = keyed.post_interaction(interaction_body("hi"), headers=headers)
        assert response.status_code == 401
        assert "s3cret" not in response.text

    def test_refused_requests_keep_the_connection_usable(self, keyed):
        # an early 401 must not leave the body unread (Hypercorn would drop the keep-alive connection)
        for i in range(40):
            wrong = keyed.post_interaction(interaction_body("hi" * 500), headers={"X-Service-Key": "nope"})
            assert wrong.status_code == 401
            right = keyed.post_interaction(interaction_body("x"), headers={"X-Service-Key": "s3cret-router-key"})
            assert right.status_code == 202

    @pytest.mark.parametrize("headers", [{"X-Service-Key": "s3cret-router-key"},
                                         {"Authorization": "Bearer s3cret-router-key"}])
    def test_right_key_is_accepted(self, keyed, headers):
        assert keyed.post_interaction(interaction_body("hi"), headers=headers).status_code == 202


def test_full_queue_is_429_with_retry_after_and_nothing_accepted_is_lost(fake_ollama, fake_router):
    fake_ollama.hang = True
    settings = make_settings(ollama=fake_ollama, router=fake_router, max_queue=3, worker_count=1,
                             request_timeout=1)
    with running_app(settings) as app:
        before = {o: outcome_count(o) for o in metrics.OUTCOMES}
        accepted, refused = 0, None
        for i in range(10):
            response = app.post_interaction(interaction_body("hello?", user_id=f"u{i}"))
            if response.status_code == 429:
                refused = response
                break
            assert response.status_code == 202
            accepted += 1
        assert refused is not None, "queue never filled"
        assert refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "queue_full"
        fake_ollama.hang = False
        wait_until(lambda: sum(outcome_count(o) - before[o] for o in metrics.OUTCOMES) == accepted,
                   timeout=20, message="every accepted interaction to end in an outcome")
        assert len(fake_router.replies) == accepted
