"""The service against a strict fake of the published WaddleBot router (tests/fakes/waddlebot_router.py):
its command processor calling POST /api/v1/execute for `!ai`, and its reply endpoint taking the
`waddlebot` reply body (ROUTER_PROTOCOL) and refusing the `contract` one (§6, §11)."""

from __future__ import annotations

import pytest

from observability import metrics
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until

KEY = "svc-key-Ww42"
ENTITY = "twitch:channel:789"
PROCESSOR_FIELDS = {"command", "args", "user_id", "entity_id", "community_id", "session_id", "message"}
SDK_RESPONSE_FIELDS = {"success", "message", "data", "error", "targets"}


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def chat_calls(fake) -> list[dict]:
    return [body for path, _, body in fake.requests if path == "/api/chat"]


@pytest.fixture
def wired(fake_ollama, waddlebot_router):
    """The app as a WaddleBot module: `!ai` and `#ask` registered to it, the channel in community 7."""
    def start(**overrides):
        settings = make_settings(ollama=fake_ollama, router_service_key=KEY, router_protocol="waddlebot",
                                 router_api_url=waddlebot_router.base_url, **overrides)
        return running_app(settings)

    waddlebot_router.service_key = KEY
    waddlebot_router.link(ENTITY, 7)
    return start


def register(router, app) -> None:
    for command in ("!ai", "#ask", "!joke"):
        router.register_command(command, app.url)


# --- the command processor → POST /api/v1/execute ------------------------------------------------

def test_ai_command_round_trip_reaches_chat(wired, fake_ollama, waddlebot_router):
    fake_ollama.reply = "Penguins are flightless birds of the southern hemisphere."
    with wired() as app:
        register(waddlebot_router, app)
        before = sample("ai_interactions_total", outcome="replied", trigger="command")
        result = waddlebot_router.say("!ai what is a penguin?")
        assert result["success"] is True and result["module"] == "ai_interaction"
        module_answer = result["response"]
        assert set(module_answer) == SDK_RESPONSE_FIELDS
        assert module_answer["success"] is True and module_answer["error"] is None and module_answer["targets"] == []
        assert module_answer["message"] == "🤖 Penguins are flightless birds of the southern hemisphere."
        assert module_answer["data"]["fallback"] is False and module_answer["data"]["provider"] == "ollama"
        assert waddlebot_router.chat == [module_answer["message"]]
        (call,) = waddlebot_router.module_calls  # answered at the first attempt, no retry
        assert call["status"] == 200 and call["url"] == app.url + "/api/v1/execute"
        assert set(call["payload"]) == PROCESSOR_FIELDS and call["payload"]["args"] == "what is a penguin?"
        assert sample("ai_interactions_total", outcome="replied", trigger="command") == before + 1
    messages = chat_calls(fake_ollama)[-1]["messages"]
    assert messages[-1] == {"role": "user", "content": "friend: what is a penguin?"}
    assert "live-stream chat" in messages[0]["content"] and "penguin" not in messages[0]["content"]


def test_hash_prefix_and_a_registered_command_this_module_does_not_answer(wired, waddlebot_router):
    with wired() as app:
        register(waddlebot_router, app)
        assert waddlebot_router.say("#ask is it raining?")["response"]["success"] is True
        joke = waddlebot_router.say("!joke please")["response"]
        assert joke["success"] is False and "!joke" in joke["error"] and "!ai, !ask" in joke["error"]
        assert waddlebot_router.chat[-1] == "Error: " + joke["error"]


def test_command_alone_gets_a_usage_hint_without_calling_the_llm(wired, fake_ollama, waddlebot_router):
    with wired() as app:
        register(waddlebot_router, app)
        answer = waddlebot_router.say("!ai")["response"]
        assert answer["success"] is True and answer["message"] == "Usage: !ai <your question>"
        assert chat_calls(fake_ollama) == []


@pytest.mark.parametrize("router_key", [None, "not-the-key"])
def test_wrong_or_missing_service_key_is_401_and_the_router_gives_up(wired, fake_ollama, waddlebot_router, router_key):
    with wired() as app:
        register(waddlebot_router, app)
        waddlebot_router.service_key = router_key
        result = waddlebot_router.say("!ai hello?")
        assert result == {"success": False, "error": "Module did not respond", "session_id": result["session_id"]}
        assert [c["status"] for c in waddlebot_router.module_calls] == [401]
        assert chat_calls(fake_ollama) == []


def test_llm_timeout_answers_the_fallback_in_time_and_the_late_call_still_counts(wired, fake_ollama, waddlebot_router):
    fake_ollama.hang = True
    with wired(execute_timeout_s=1, request_timeout=2) as app:
        register(waddlebot_router, app)
        before = sample("ai_fallbacks_total", reason="timeout")
        answer = waddlebot_router.say("!ai are you there?")["response"]
        assert answer["success"] is True and answer["data"]["fallback"] is True
        assert answer["data"]["provider"] is None and answer["message"].startswith("🤖 ")
        assert len(waddlebot_router.module_calls) == 1  # before the router's own timeout: no retry
        assert sample("ai_fallbacks_total", reason="timeout") == before + 1
        # The call went on past the answer's deadline; its provider timeout reaches the breaker.
        breaker = app.runtime.breakers["ollama"]
        wait_until(lambda: breaker.consecutive_failures == 1, message="the late call's timeout counted")
        assert len(app.runtime.pipeline.stragglers) == 0


def test_llm_failure_answers_the_fallback(wired, fake_ollama, waddlebot_router):
    fake_ollama.fail_status = 500
    with wired() as app:
        register(waddlebot_router, app)
        before = sample("ai_interactions_total", outcome="fallback", trigger="command")
        answer = waddlebot_router.say("!ai what now?")["response"]
        assert answer["success"] is True and answer["data"]["fallback"] is True
        assert waddlebot_router.chat == [answer["message"]]
        assert sample("ai_interactions_total", outcome="fallback", trigger="command") == before + 1


def test_without_fallbacks_a_failure_is_success_false_with_an_error(wired, fake_ollama, waddlebot_router):
    fake_ollama.fail_status = 500
    with wired(respond_with_fallback=False) as app:
        register(waddlebot_router, app)
        before = sample("ai_interactions_total", outcome="failed", trigger="command")
        answer = waddlebot_router.say("!ai what now?")["response"]
        assert answer["success"] is False and answer["message"] is None and answer["error"]
        assert answer["data"]["fallback"] is False
        assert sample("ai_interactions_total", outcome="failed", trigger="command") == before + 1


def test_rate_limited_command_posts_nothing_to_chat(wired, waddlebot_router):
    with wired(user_cooldown_s=60) as app:
        register(waddlebot_router, app)
        before = sample("ai_interactions_total", outcome="rate_limited", trigger="command")
        first = waddlebot_router.say("!ai first?")["response"]
        second = waddlebot_router.say("!ai second?")["response"]
        assert first["success"] is True and first["message"]
        assert second["success"] is True and second["message"] == "" and second["error"] is None
        assert second["data"]["rate_limited"] is True and second["data"]["scope"] == "user"
        assert waddlebot_router.chat == [first["message"]]
        assert sample("ai_interactions_total", outcome="rate_limited", trigger="command") == before + 1
        other = waddlebot_router.say("!ai me too?", user_id="someone-else")["response"]
        assert other["message"]


def test_a_command_answer_is_history_for_the_next_one_a_fallback_is_not(wired, fake_ollama, waddlebot_router):
    with wired() as app:
        register(waddlebot_router, app)
        fake_ollama.reply = "Blue."
        waddlebot_router.say("!ai favourite colour?")
        fake_ollama.fail_status = 500
        waddlebot_router.say("!ai and number?")
        fake_ollama.fail_status = None
        waddlebot_router.say("!ai and food?")
    turns = [(m["role"], m["content"]) for m in chat_calls(fake_ollama)[-1]["messages"][1:]]
    assert turns == [("user", "friend: favourite colour?"), ("assistant", "Blue."), ("user", "friend: and food?")]


# --- the interaction path's reply → POST /api/v1/router/responses -------------------------------

def test_waddlebot_reply_body_is_accepted_by_the_strict_router(wired, fake_ollama, waddlebot_router):
    fake_ollama.reply = "Hey Viewer42, welcome in!"
    with wired() as app:
        app.post_interaction(interaction_body("hello chat", message_id="m-1", channel_id="789"),
                             headers={"X-Service-Key": KEY})
        app.post_interaction(interaction_body("hello again", user_id="u2", message_id=None, channel_id=None),
                             headers={"X-Service-Key": KEY})
        wait_until(lambda: len(waddlebot_router.responses) == 2, message="two replies accepted")
    by_event = {r["event_id"]: r for r in waddlebot_router.responses}
    assert by_event["m-1"] == {"event_id": "m-1", "response": "🤖 Hey Viewer42, welcome in!",
                               "platform": "twitch", "channel_id": "789"}
    (other,) = [r for key, r in by_event.items() if key != "m-1"]
    assert other["channel_id"] == ENTITY and len(other["event_id"]) == 36  # the interaction id
    assert waddlebot_router.rejected == []


def test_contract_reply_body_is_refused_by_it_and_not_remembered(fake_ollama, waddlebot_router):
    settings = make_settings(ollama=fake_ollama, router_protocol="contract", router_api_url=waddlebot_router.base_url)
    with running_app(settings) as app:
        before = sample("ai_interactions_total", outcome="failed", trigger="question")
        app.post_interaction(interaction_body("what is a penguin?"))
        wait_until(lambda: waddlebot_router.rejected, message="the reply refused")
        wait_until(lambda: sample("ai_interactions_total", outcome="failed", trigger="question") == before + 1)
        errors = waddlebot_router.rejected[0]["errors"]
        extra = {e["field"] for e in errors if e["type"] == "extra_forbidden"}
        assert {"session_id", "interaction_id", "chat_message", "response_data"} <= extra
        assert {e["field"] for e in errors if e["type"] == "missing"} == {"event_id", "response"}
        app.post_interaction(interaction_body("and what do they eat?"))
        wait_until(lambda: len(waddlebot_router.rejected) == 2)
    # The refused reply never reached chat, so it is not history either.
    assert [m["role"] for m in chat_calls(fake_ollama)[-1]["messages"]] == ["system", "user"]


def test_a_platform_the_published_router_does_not_know_is_refused_there(wired, waddlebot_router):
    with wired() as app:
        app.post_interaction(interaction_body("hello", platform="youtube"), headers={"X-Service-Key": KEY})
        wait_until(lambda: waddlebot_router.rejected, message="the youtube reply refused")
    assert [e["field"] for e in waddlebot_router.rejected[0]["errors"]] == ["platform"]
