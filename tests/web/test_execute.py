"""POST /api/v1/execute (§11): the module SDK's request and response, its key, its bad input, and
the limits it shares with the interaction path."""

from __future__ import annotations

import pytest

from observability import metrics
from tests.support import interaction_body, make_settings, running_app, settled
from tests.waiting import wait_until

EXECUTE = "/api/v1/execute"
KEY = "router-key-Ex77"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def sdk_body(*args: str, **overrides):
    """The SDK's ExecuteRequest, every field as libs/module_sdk/base/module.py types it."""
    body = {"command": "!ai", "args": list(args) or ["what", "is", "a", "penguin?"], "user_id": "user-42",
            "entity_id": "twitch:channel:789", "community_id": "7", "session_id": "sess-1",
            "platform": "twitch", "metadata": {"display_name": "Viewer42"}, "scopes": ["chat"]}
    body.update(overrides)
    return body


@pytest.fixture
def app(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, router_service_key=KEY)
    with running_app(settings) as handle:
        yield handle


def execute(app, body, key: str | None = KEY, **kwargs):
    headers = {"X-Service-Key": key} if key else {}
    return app.http.post(EXECUTE, json=body, headers=headers, **kwargs)


def test_sdk_request_is_answered_with_the_sdk_response(app, fake_ollama):
    fake_ollama.reply = "Penguins are birds."
    before = sample("ai_interactions_total", outcome="replied", trigger="command")
    response = execute(app, sdk_body())
    assert response.status_code == 200
    body = response.json()
    assert body == {"success": True, "message": "🤖 Penguins are birds.", "error": None, "targets": [],
                    "data": {"interaction_id": body["data"]["interaction_id"], "provider": "ollama",
                             "model": body["data"]["model"], "fallback": False}}
    assert sample("ai_interactions_total", outcome="replied", trigger="command") == before + 1
    messages = fake_ollama.last_body["messages"]
    assert messages[-1] == {"role": "user", "content": "Viewer42: what is a penguin?"}
    assert "twitch live-stream chat" in messages[0]["content"]


def test_the_fallback_addresses_the_viewer_the_metadata_names(app, fake_ollama):
    fake_ollama.fail_status = 500
    body = execute(app, sdk_body()).json()
    assert body["success"] is True and body["data"]["fallback"] is True and "Viewer42" in body["message"]


@pytest.mark.parametrize("command", ["ai", "!ai", "#ai", "!AI", " ask ", "#Ask"])
def test_commands_are_matched_with_or_without_prefix_and_case(app, command):
    body = execute(app, sdk_body(command=command)).json()
    assert body["success"] is True and body["message"]


def test_commands_come_from_the_commands_variable(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, commands="!gpt")) as app:
        assert execute(app, sdk_body(command="!gpt"), key=None).json()["success"] is True
        refused = execute(app, sdk_body(command="!ai"), key=None).json()
        assert refused == {"success": False, "message": None, "data": None, "targets": [],
                           "error": "unknown command: !ai (this module answers !gpt)"}


def test_unknown_command_is_success_false_naming_it_and_never_reaches_the_llm(app, fake_ollama):
    before = sample("ai_interactions_total", outcome="ignored", trigger="none")
    body = execute(app, sdk_body(command="!dance")).json()
    assert body["success"] is False and body["error"].startswith("unknown command: !dance")
    assert fake_ollama.chat_requests == []
    assert sample("ai_interactions_total", outcome="ignored", trigger="none") == before + 1


@pytest.mark.parametrize("args", [[], [" "], ""])
def test_no_question_gets_a_usage_hint(app, fake_ollama, args):
    body = execute(app, sdk_body(args=args, command="#ask")).json()
    assert body["success"] is True and body["message"] == "Usage: #ask <your question>"
    assert fake_ollama.chat_requests == []


def test_the_published_routers_narrower_body_is_accepted(app, fake_ollama):
    """processing/router_module/services/command_processor.py: args a string, community_id an integer,
    no platform/metadata/scopes, and the whole chat line as `message`."""
    body = {"command": "!ai", "args": "what is a penguin?", "user_id": "u1", "entity_id": "guild:1",
            "community_id": 7, "session_id": "sess_x", "message": "!ai what is a penguin?"}
    answer = execute(app, body).json()
    assert answer["success"] is True
    assert fake_ollama.last_body["messages"][-1]["content"] == "friend: what is a penguin?"


@pytest.mark.parametrize("field,change", [
    ("command", {"command": None}),
    ("command", {"command": ""}),
    ("args", {"args": [1, 2]}),
    ("args", {"args": "x" * 10_001}),
    ("user_id", {"user_id": ""}),
    ("entity_id", {"entity_id": "e" * 256}),
    ("session_id", {"session_id": None}),
    ("community_id", {"community_id": "seven"}),
    ("community_id", {"community_id": 0}),
    ("community_id", {"community_id": True}),
    ("platform", {"platform": "myspace"}),
    ("metadata", {"metadata": {"blob": "x" * 5000}}),
    ("metadata", {"metadata": ["not", "an", "object"]}),
    ("scopes", {"scopes": "chat"}),
])
def test_bad_input_is_a_400_naming_the_field(app, fake_ollama, field, change):
    body = sdk_body()
    body.update(change)
    if change.get(field, "") is None:
        del body[field]
    response = execute(app, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {d["field"].split(".")[0] for d in error["details"]} == {field}
    assert fake_ollama.chat_requests == []


def test_malformed_json_and_wrong_content_type(app):
    response = app.http.post(EXECUTE, content=b"{nope", headers={"X-Service-Key": KEY,
                                                                 "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    response = app.http.post(EXECUTE, content=b"command=ai", headers={
        "X-Service-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


@pytest.mark.parametrize("headers", [{}, {"X-Service-Key": "wrong"}, {"Authorization": "Bearer wrong"}])
def test_missing_or_wrong_service_key_is_401(app, fake_ollama, headers):
    response = app.http.post(EXECUTE, json=sdk_body(), headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert fake_ollama.chat_requests == []


def test_bearer_key_is_accepted_too(app):
    response = app.http.post(EXECUTE, json=sdk_body(), headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


def test_draining_answers_503(app):
    app.runtime.draining = True
    try:
        response = execute(app, sdk_body())
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
    finally:
        app.runtime.draining = False


# --- shared with the interaction path ---------------------------------------------------------

def test_rate_limits_are_shared_with_the_interaction_path(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, user_cooldown_s=60)
    with running_app(settings) as app:
        app.post_interaction(interaction_body("hello there", user_id="u1"))
        fake_router.wait_for_replies(1)
        limited = execute(app, sdk_body(user_id="u1"), key=None).json()
        assert limited["success"] is True and limited["message"] == "" and limited["data"]["rate_limited"] is True
        answered = execute(app, sdk_body(user_id="u2"), key=None).json()
        assert answered["message"]
        before = sample("ai_interactions_total", outcome="rate_limited", trigger="greeting")
        app.post_interaction(interaction_body("hello again", user_id="u2"))
        wait_until(lambda: sample("ai_interactions_total", outcome="rate_limited", trigger="greeting") == before + 1)
        assert len(fake_router.replies) == 1


def test_channel_limit_is_shared_too(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, channel_max_replies_per_min=2)
    with running_app(settings) as app:
        app.post_interaction(interaction_body("hello", user_id="a"))
        fake_router.wait_for_replies(1)
        assert execute(app, sdk_body(user_id="b"), key=None).json()["message"]
        limited = execute(app, sdk_body(user_id="c"), key=None).json()
        assert limited["data"] == {**limited["data"], "rate_limited": True, "scope": "channel"}


def test_context_is_shared_with_the_interaction_path(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router)) as app:
        fake_ollama.reply = "Welcome!"
        app.post_interaction(interaction_body("hello there", user_id="u1", display_name="Viewer42"))
        fake_router.wait_for_replies(1)
        execute(app, sdk_body(user_id="u1"), key=None)
    turns = [(m["role"], m["content"]) for m in fake_ollama.last_body["messages"][1:]]
    assert turns == [("user", "Viewer42: hello there"), ("assistant", "Welcome!"),
                     ("user", "Viewer42: what is a penguin?")]


def test_a_reply_the_router_refused_is_not_history(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, router_retry_max_s=0)) as app:
        fake_router.fail_status = 400
        app.post_interaction(interaction_body("hello there", user_id="u1"))
        wait_until(lambda: fake_router.attempts and fake_router.attempts[-1]["status"] == 400)
        wait_until(lambda: settled(app))
        fake_router.fail_status = None
        app.post_interaction(interaction_body("hello again", user_id="u1"))
        fake_router.wait_for_replies(1)
    assert [m["role"] for m in fake_ollama.last_body["messages"]] == ["system", "user"]
