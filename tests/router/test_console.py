"""The console reply sink (§6): ROUTER_API_URL unset → each reply is one readable line on stdout."""

from __future__ import annotations

import io

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.bodies import OutgoingReply, contract_body, waddlebot_body
from router.console import ConsoleSink, reply_line
from tests.app_process import start_app
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until


def _reply(**overrides) -> OutgoingReply:
    values = dict(interaction_id="i-1", session_id="s", platform="twitch", entity_id="twitch:channel:789",
                  user_id="u1", text="🤖 Hey\nthere!", trigger="greeting", provider=None, model=None, fallback=True,
                  processing_time_ms=3)
    return OutgoingReply(**{**values, **overrides})


def test_a_reply_line_names_channel_user_trigger_fallback_and_the_text_on_one_line():
    line = reply_line(contract_body(_reply()))
    assert line == "reply twitch #twitch:channel:789 @u1 [greeting, fallback] 🤖 Hey there!"
    assert reply_line(contract_body(_reply(fallback=False, channel_id="c9"))) == \
        "reply twitch #c9 @u1 [greeting] 🤖 Hey there!"


def test_a_waddlebot_shaped_body_still_prints_its_text():
    assert reply_line(waddlebot_body(_reply())) == "reply twitch #twitch:channel:789 🤖 Hey there!"


async def test_a_broken_stdout_is_a_refused_attempt():
    stream = io.StringIO()
    stream.close()
    attempt = await ConsoleSink(stream).attempt(contract_body(_reply()), {})
    assert attempt.result == "refused" and "ValueError" in attempt.error


def test_in_process_the_reply_goes_to_the_console_and_the_outcome_is_recorded():
    settings = make_settings(router_api_url=None, ollama_port=1, user_cooldown_s=0)
    stream = io.StringIO()
    with running_app(settings, log_stream=stream) as app:
        def fallbacks() -> float:  # the interaction's outcome, as counted
            for family in text_string_to_metric_families(app.http.get("/metrics").text):
                for sample in family.samples:
                    if sample.name == "ai_interactions_total" and sample.labels == {"outcome": "fallback",
                                                                                     "trigger": "greeting"}:
                        return sample.value
            return 0.0

        before = fallbacks()
        posted = app.http.post("/api/v1/ai/interaction", json=interaction_body("hello chat!"))
        assert posted.status_code == 202
        line = wait_until(lambda: next((x for x in stream.getvalue().splitlines() if x.startswith("reply ")), None),
                          timeout=15, message="the reply line")
        assert "[greeting, fallback]" in line

        wait_until(lambda: fallbacks() >= before + 1, timeout=10, message="the outcome counted `fallback`")


@pytest.fixture
def newcomer(tmp_path):
    app = start_app(tmp_path, USER_COOLDOWN_S="0")
    try:
        yield app.wait_up()
    finally:
        app.stop()


def test_python_app_py_without_a_router_prints_the_reply_with_no_llm_running(newcomer):
    ready = httpx.get(f"{newcomer.url}/ready", timeout=5).json()
    assert ready["replies"] == "console"
    posted = httpx.post(f"{newcomer.url}/api/v1/ai/interaction", json=interaction_body("hello chat!"), timeout=5)
    assert posted.status_code == 202
    line = wait_until(lambda: next((x for x in newcomer.lines() if x.startswith("reply ")), None),
                      timeout=10, message="the reply on stdout")
    assert line.startswith("reply twitch #789 @user-42 [greeting, fallback] 🤖 ")
    assert "router-service" not in newcomer.text()  # nothing was posted anywhere


def test_ready_says_router_when_a_router_is_configured(fake_router):
    with running_app(make_settings(router=fake_router)) as app:
        assert app.http.get("/ready").json()["replies"] == "router"
