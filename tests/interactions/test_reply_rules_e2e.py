"""Reply rules end to end through the real app (§3 steps 10–12, §4, §7, §11), in memory mode:
the reply's language in the system message and in canned fallbacks, the model per trigger, the
reply blocklist (outcome `moderated`, never remembered, never logged with its text), talk between
viewers, and the per-community rules set with PUT /api/v1/ai/config.

Every test runs the app on loopback against the fake LLM and the fake router (tests/fakes)."""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from interactions.fallback_texts import FALLBACK_TEXTS
from tests.service_process import start_service
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until
from tests.web.admin_support import ADMIN_KEY, AUTH

PREFIX = "🤖 "
CONFIG = "/api/v1/ai/config"
EXECUTE = "/api/v1/execute"
SERVICE_KEY = "router-key-rules-17"


# --- helpers --------------------------------------------------------------------------------------
def metric(app: Any, name: str, **labels: str) -> float:
    """One sample as the app's /metrics shows it (0 when the series does not exist yet)."""
    text = app.http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def outcomes(app: Any, outcome: str, trigger: str) -> float:
    return metric(app, "ai_interactions_total", outcome=outcome, trigger=trigger)


def chat_bodies(fake: Any) -> list[dict[str, Any]]:
    return [body for _, _, body in fake.chat_requests]


def request_for(fake: Any, text: str) -> dict[str, Any]:
    """The LLM request whose last (user) message carries `text`."""
    found = [b for b in chat_bodies(fake) if text in b["messages"][-1]["content"]]
    assert len(found) == 1, f"{len(found)} LLM requests for {text!r}"
    return found[0]


def reply_to(router: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The router payload answering the interaction posted with `body` (waits for it)."""
    def find() -> dict[str, Any] | None:
        return next((r["body"] for r in list(router.replies) if r["body"]["session_id"] == body["session_id"]), None)
    return wait_until(find, message=f"the reply to {body['message_content']!r}")


def canned(language: str, kind: str, name: str = "Viewer42") -> set[str]:
    return {PREFIX + t.format(name=name) for t in FALLBACK_TEXTS[language][kind]}


def put_config(app: Any, community: int, change: dict[str, Any]) -> dict[str, Any]:
    response = app.http.put(f"{CONFIG}?community_id={community}", headers=AUTH, json=change)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture
def app(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY)) as handle:
        yield handle


# --- 1. the reply's language in the system message --------------------------------------------------
@pytest.mark.parametrize(("message", "hint"), [
    ("hola chat", "The viewer wrote in Spanish: reply in Spanish."),
    ("こんにちは皆さん", "The viewer wrote in Japanese: reply in Japanese."),
    ("привет всем", "The viewer wrote in Russian: reply in Russian."),
    ("hello chat", "The viewer wrote in English: reply in English."),
    ("gg?", "Reply in the language the viewer wrote in."),  # a question in no language it can tell
])
def test_the_system_message_names_the_language_of_the_message(app, fake_ollama, fake_router, message, hint):
    body = interaction_body(message)
    app.post_interaction(body)
    reply_to(fake_router, body)
    system = request_for(fake_ollama, message)["messages"][0]
    assert system["role"] == "system"
    assert hint in system["content"]
    assert message not in system["content"]  # chat text never goes into the system message
    for name in ("Spanish", "Japanese", "Russian", "English"):
        if name not in hint:
            assert f"in {name}" not in system["content"]


# --- 2. canned fallbacks in the message's language --------------------------------------------------
LOCALIZED = [("hola chat", "es", "greeting"), ("привет всем", "ru", "greeting"),
             ("こんにちは皆さん", "ja", "greeting"), ("¿qué juego es este?", "es", "question"),
             ("adiós chat", "es", "farewell")]


@pytest.mark.parametrize("fault", ["status", "hang"])
def test_a_failing_llm_is_answered_with_the_canned_reply_in_the_message_language(fake_ollama, fake_router, fault):
    if fault == "status":
        fake_ollama.fail_status = 500
    else:
        fake_ollama.hang = True
    settings = make_settings(ollama=fake_ollama, router=fake_router, request_timeout=0.5,
                             breaker_failure_threshold=50)
    with running_app(settings) as app:
        bodies = [interaction_body(text, user_id=f"u-{i}") for i, (text, _, _) in enumerate(LOCALIZED)]
        for body in bodies:
            app.post_interaction(body)
        for body, (text, language, kind) in zip(bodies, LOCALIZED):
            payload = reply_to(fake_router, body)
            assert payload["response_data"]["fallback"] is True, text
            assert payload["response_data"]["trigger_type"] == kind
            assert payload["chat_message"] in canned(language, kind), (text, payload["chat_message"])
            assert payload["chat_message"] not in canned("en", kind)
        assert len(chat_bodies(fake_ollama)) == len(LOCALIZED)  # the LLM was asked each time


# --- 3. the model per trigger ------------------------------------------------------------------------
def test_model_by_trigger_picks_the_model_by_event_type_then_trigger(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             model_by_trigger="greeting=small-model,raid=raid-model,event=event-model")
    with running_app(settings) as app:
        cases = [
            (interaction_body("hello chat", user_id="g"), "small-model"),
            (interaction_body("", user_id="r", message_type="raid"), "raid-model"),
            (interaction_body("", user_id="f", message_type="follow"), "event-model"),
            (interaction_body("what game is this?", user_id="q"), "llama3.2"),  # the configured model
        ]
        for body, _ in cases:
            app.post_interaction(body)
        for body, model in cases:
            payload = reply_to(fake_router, body)
            sent = [b["model"] for b in chat_bodies(fake_ollama)
                    if b["messages"][-1]["content"] == user_message(body)]
            assert sent == [model], (body["message_type"], body["message_content"], sent)
            assert payload["response_data"]["model"] == model


def user_message(body: dict[str, Any]) -> str:
    if body["message_type"] != "chatMessage":
        return f"[{body['message_type']} event from {body['display_name']}]"
    return f"{body['display_name']}: {body['message_content']}"


def test_model_by_trigger_per_community_is_merged_key_by_key(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             model_by_trigger="greeting=small-model,raid=raid-model")
    with running_app(settings) as app:
        data = put_config(app, 7, {"model_by_trigger": {"question": "community-q", "greeting": "community-hi"}})
        assert data["effective"]["model_by_trigger"] == {
            "greeting": "community-hi", "raid": "raid-model", "question": "community-q"}
        cases = [
            (interaction_body("hello chat", user_id="a", community_id=7), "community-hi"),
            (interaction_body("what game is this?", user_id="b", community_id=7), "community-q"),
            (interaction_body("", user_id="c", community_id=7, message_type="raid"), "raid-model"),  # inherited
            (interaction_body("hello chat", user_id="d", community_id=8), "small-model"),  # another community
            (interaction_body("what game is this?", user_id="e", community_id=8), "llama3.2"),
        ]
        for body, _ in cases:
            app.post_interaction(body)
        for body, model in cases:
            assert reply_to(fake_router, body)["response_data"]["model"] == model, body
        assert sorted(b["model"] for b in chat_bodies(fake_ollama)) == sorted(m for _, m in cases)


# --- 4. the reply blocklist --------------------------------------------------------------------------
BLOCKED = "Hola Viewer42, you utter zorbleflux!"


def test_a_blocked_llm_reply_is_replaced_counted_and_never_remembered(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, reply_blocklist="zorbleflux")
    with running_app(settings) as app:
        moderated = outcomes(app, "moderated", "greeting")
        fallbacks = metric(app, "ai_fallbacks_total", reason="moderated")
        fake_ollama.reply = BLOCKED
        first = interaction_body("hola chat")
        app.post_interaction(first)
        payload = reply_to(fake_router, first)
        assert payload["chat_message"] in canned("es", "greeting")
        assert payload["response_data"]["fallback"] is True
        assert "zorbleflux" not in json.dumps(payload)
        wait_until(lambda: outcomes(app, "moderated", "greeting") == moderated + 1, message="outcome moderated")
        assert metric(app, "ai_fallbacks_total", reason="moderated") == fallbacks + 1

        fake_ollama.reply = "It is a penguin game."
        second = interaction_body("what game is this?")  # the same viewer, the same channel
        app.post_interaction(second)
        assert reply_to(fake_router, second)["chat_message"] == PREFIX + "It is a penguin game."
        messages = request_for(fake_ollama, "what game is this?")["messages"]
        assert [m["role"] for m in messages] == ["system", "user"]  # the moderated exchange is not history
        assert not any("zorbleflux" in m["content"] or "hola chat" in m["content"] for m in messages)

        third = interaction_body("and who made it?")  # a delivered LLM reply is history
        app.post_interaction(third)
        reply_to(fake_router, third)
        history = request_for(fake_ollama, "and who made it?")["messages"]
        assert [(m["role"], m["content"]) for m in history[1:3]] == [
            ("user", "Viewer42: what game is this?"), ("assistant", "It is a penguin game.")]


@pytest.mark.parametrize("reply", ["I like ZORBLEFLUX", "ｚｏｒｂｌｅｆｌｕｘ, pal", "free v-bucks here"])
def test_the_blocklist_matches_words_normalised_and_patterns(fake_ollama, fake_router, reply):
    settings = make_settings(ollama=fake_ollama, router=fake_router,
                             reply_blocklist='["zorbleflux", "/free\\\\s*v-?bucks/"]')
    with running_app(settings) as app:
        fake_ollama.reply = reply
        body = interaction_body("hello chat")
        app.post_interaction(body)
        assert reply_to(fake_router, body)["chat_message"] in canned("en", "greeting")


def test_a_community_blocklist_adds_to_the_global_one(app_with_global_blocklist, fake_ollama, fake_router):
    app = app_with_global_blocklist
    data = put_config(app, 7, {"reply_blocklist": ["heck"]})
    assert data["effective"]["reply_blocklist"] == ["zorbleflux", "heck"]
    cases = [  # (reply the LLM gives, community, moderated?)
        ("heck yes, welcome!", 7, True),
        ("you zorbleflux", 7, True),  # the global entry still applies
        ("heck yes, welcome!", 8, False),  # another community: only the global list
        ("you zorbleflux", 8, True),
        ("welcome in!", 7, False),
    ]
    for i, (text, community, blocked) in enumerate(cases):
        fake_ollama.reply = text
        body = interaction_body("hello chat", user_id=f"v{i}", community_id=community)
        app.post_interaction(body)
        payload = reply_to(fake_router, body)  # one at a time: the fake's reply is per request
        if blocked:
            assert payload["chat_message"] in canned("en", "greeting"), (text, community)
            assert payload["response_data"]["fallback"] is True
        else:
            assert payload["chat_message"] == PREFIX + text, (text, community)
            assert payload["response_data"]["fallback"] is False


@pytest.fixture
def app_with_global_blocklist(fake_ollama, fake_router):
    settings = make_settings(ollama=fake_ollama, router=fake_router, admin_api_keys=ADMIN_KEY,
                             reply_blocklist="zorbleflux")
    with running_app(settings) as handle:
        yield handle


@pytest.mark.parametrize("case", ["fallbacks_off", "canned_also_blocked"])
def test_when_no_canned_reply_may_go_nothing_is_posted_and_the_outcome_is_moderated(
        fake_ollama, fake_router, case):
    overrides: dict[str, Any] = (
        {"respond_with_fallback": False, "reply_blocklist": "zorbleflux"} if case == "fallbacks_off"
        else {"reply_blocklist": "zorbleflux,viewer42"})  # every canned greeting names the viewer
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, **overrides)) as app:
        before = outcomes(app, "moderated", "greeting")
        fake_ollama.reply = BLOCKED
        app.post_interaction(interaction_body("hello chat"))
        wait_until(lambda: outcomes(app, "moderated", "greeting") == before + 1, message="outcome moderated")
        assert len(chat_bodies(fake_ollama)) == 1
        # A sentinel that is answered shows the worker is past the moderated one: still nothing for it.
        fake_ollama.reply = "welcome in!"
        sentinel = interaction_body("hello chat", user_id="sentinel")
        app.post_interaction(sentinel)
        reply_to(fake_router, sentinel)
        assert [r["body"]["session_id"] for r in fake_router.replies] == [sentinel["session_id"]]


def test_a_moderated_reply_is_logged_without_its_text(fake_ollama, fake_router):
    """The real process's stdout (JSON lines): the moderation and the outcome are logged, the text never."""
    fake_ollama.reply = BLOCKED
    proc, url = start_service("hypercorn", fake_ollama, fake_router, REPLY_BLOCKLIST="zorbleflux")
    try:
        body = interaction_body("hola chat")
        assert httpx.post(f"{url}/api/v1/ai/interaction", json=body, timeout=5).status_code == 202
        payload = reply_to(fake_router, body)
        assert payload["chat_message"] in canned("es", "greeting")

        def moderated_counted() -> bool:
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            return 'ai_interactions_total{outcome="moderated",trigger="greeting"} 1.0' in metrics
        wait_until(moderated_counted, message="outcome moderated in /metrics")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    blocked = [r for r in records if r.get("action") == "moderate"]
    assert len(blocked) == 1 and blocked[0]["result"] == "moderated", output[-3000:]
    assert blocked[0]["interaction_id"] == payload["interaction_id"]
    finished = [r for r in records if r.get("event") == "interaction finished"
                and r.get("interaction_id") == payload["interaction_id"]]
    assert [r["result"] for r in finished] == ["moderated"]
    assert "you utter" not in output and "Viewer42, you" not in output  # no part of the reply
    # The blocked word itself is never logged, not even in the start-up line's configuration.
    assert "zorbleflux" not in output


# --- 4b. the execute path (§11) ---------------------------------------------------------------------
def sdk_body(*words: str) -> dict[str, Any]:
    return {"command": "!ai", "args": list(words) or ["what", "is", "a", "penguin?"], "user_id": "user-42",
            "entity_id": "twitch:channel:789", "community_id": "7", "session_id": "sess-x",
            "platform": "twitch", "metadata": {"display_name": "Viewer42"}}


@pytest.mark.parametrize("fallbacks", [True, False])
def test_the_execute_path_moderates_the_same_way(fake_ollama, fake_router, fallbacks):
    settings = make_settings(ollama=fake_ollama, router=fake_router, router_service_key=SERVICE_KEY,
                             reply_blocklist="zorbleflux", respond_with_fallback=fallbacks)
    with running_app(settings) as app:
        before = outcomes(app, "moderated", "command")
        fake_ollama.reply = "a penguin is a zorbleflux"
        response = app.http.post(EXECUTE, json=sdk_body(), headers={"X-Service-Key": SERVICE_KEY})
        assert response.status_code == 200
        answer = response.json()
        assert answer["success"] is True and answer["data"]["moderated"] is True
        assert "zorbleflux" not in json.dumps(answer)
        if fallbacks:
            assert answer["message"] in canned("en", "command")
            assert answer["data"]["fallback"] is True
        else:
            assert answer["message"] == ""
        assert outcomes(app, "moderated", "command") == before + 1

        fake_ollama.reply = "Penguins are birds."
        follow_up = app.http.post(EXECUTE, json=sdk_body("and", "where", "do", "they", "live?"),
                                  headers={"X-Service-Key": SERVICE_KEY}).json()
        assert follow_up["message"] == PREFIX + "Penguins are birds." and "moderated" not in follow_up["data"]
        messages = fake_ollama.last_body["messages"]
        assert [m["role"] for m in messages] == ["system", "user"]  # the moderated answer is not history
        assert fake_router.replies == []  # a command is answered inline, never through the router


# --- 5. talk between viewers ---------------------------------------------------------------------------
def test_talk_between_viewers_is_ignored_and_a_mention_of_the_bot_is_not(app, fake_ollama, fake_router):
    before = outcomes(app, "ignored", "none")
    talk = ["@bob hi", "@bob are you coming tonight?", "@alice hola, ¿vienes?", "@bob bye"]
    for i, text in enumerate(talk):
        app.post_interaction(interaction_body(text, user_id=f"talk-{i}"))
    wait_until(lambda: outcomes(app, "ignored", "none") == before + len(talk), message="the talk ignored")
    assert chat_bodies(fake_ollama) == [] and fake_router.replies == []

    mention = interaction_body("@bob hi @waddlebot", user_id="mention")
    app.post_interaction(mention)
    assert reply_to(fake_router, mention)["response_data"]["trigger_type"] == "mention"
    assert len(fake_router.replies) == 1


# --- 6. per-community rules with PUT (memory mode) ----------------------------------------------------
BAD_RULES = [
    ("trigger_languages", {"trigger_languages": ["xx"]}),
    ("trigger_languages", {"trigger_languages": []}),
    ("reply_blocklist", {"reply_blocklist": ["/(/"]}),
    ("reply_blocklist", {"reply_blocklist": "heck"}),
    ("model_by_trigger", {"model_by_trigger": {"a b": "m"}}),
    ("model_by_trigger", {"model_by_trigger": {"greeting": ""}}),
]


@pytest.mark.parametrize(("field", "change"), BAD_RULES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_RULES)])
def test_a_bad_rule_is_a_400_naming_its_field_and_changes_nothing(app, field, change):
    response = app.http.put(f"{CONFIG}?community_id=5", headers=AUTH, json=change)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert any(d["field"].split(".")[0] == field for d in error["details"]), error
    shown = app.http.get(f"{CONFIG}?community_id=5", headers=AUTH).json()["data"]
    assert field not in shown["overrides"]


def test_community_rules_apply_to_that_community_only(app, fake_ollama, fake_router):
    data = put_config(app, 7, {"trigger_languages": ["en"], "model_by_trigger": {"greeting": "tiny-model"},
                               "reply_blocklist": ["heck"]})
    assert data["persisted"] is False
    shown = app.http.get(f"{CONFIG}?community_id=7", headers=AUTH).json()["data"]
    for view in (data, shown):
        assert view["effective"]["trigger_languages"] == ["en"]
        assert view["effective"]["model_by_trigger"] == {"greeting": "tiny-model"}
        assert view["effective"]["reply_blocklist"] == ["heck"]
        assert view["overrides"]["trigger_languages"] == ["en"]
    other = app.http.get(f"{CONFIG}?community_id=8", headers=AUTH).json()["data"]["effective"]
    assert "es" in other["trigger_languages"] and other["reply_blocklist"] == [] and other["model_by_trigger"] == {}

    before = outcomes(app, "ignored", "none")
    app.post_interaction(interaction_body("hola", user_id="es-7", community_id=7))
    wait_until(lambda: outcomes(app, "ignored", "none") == before + 1, message="hola ignored in community 7")

    fake_ollama.reply = "heck, welcome!"
    hola_elsewhere = interaction_body("hola", user_id="es-8", community_id=8)
    app.post_interaction(hola_elsewhere)
    assert reply_to(fake_router, hola_elsewhere)["chat_message"] == PREFIX + "heck, welcome!"

    hello_here = interaction_body("hello", user_id="en-7", community_id=7)
    app.post_interaction(hello_here)
    payload = reply_to(fake_router, hello_here)
    assert payload["chat_message"] in canned("en", "greeting")  # moderated by the community's list
    assert request_for(fake_ollama, "Viewer42: hello")["model"] == "tiny-model"
    assert len(fake_router.replies) == 2  # nothing for the Spanish greeting in community 7

    reset = put_config(app, 7, {"trigger_languages": None, "reply_blocklist": None, "model_by_trigger": None})
    assert "es" in reset["effective"]["trigger_languages"]
    assert reset["effective"]["reply_blocklist"] == [] and reset["effective"]["model_by_trigger"] == {}
