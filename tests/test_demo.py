"""`make demo` end to end: the fake LLM, the chat and the replay tool against a real service process."""

from __future__ import annotations

import signal

import pytest

from examples.fake_llm import FakeLLM
from examples.replay import DEFAULT_CHAT, Replayer, ReplyRouter, read_chat, run
from tests.service_process import start_service

ROUTER_KEY, ADMIN_KEY = "demo-router-key", "demo-admin-key"

# Canned sentences of the fake LLM, by language: a reply must be the LLM's, in the viewer's language.
GREETED_IN = {"hola a todos!!": "¡Hola maria_gg", "bonjour tout le monde": "Salut camille",
              "привет всем": "Привет, dmitry", "こんにちは皆さん": "yuki さん、こんにちは",
              "안녕하세요 여러분": "minsu 님, 안녕하세요", "大家好，你好": "xiaoming，你好",
              "hello chat! just got here": "Hey alex_plays"}


@pytest.fixture
def demo_service():
    llm, router = FakeLLM(word_delay=0).start(), ReplyRouter().start()
    proc, url = start_service("hypercorn", llm, router, ROUTER_SERVICE_KEY=ROUTER_KEY, ADMIN_API_KEYS=ADMIN_KEY,
                              CHANNEL_MAX_REPLIES_PER_MIN="1000", LOG_LEVEL="WARNING")
    try:
        yield llm, router, url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            llm.stop()
            router.stop()


def by_text(results):
    """Each result under its line's text (an event without text under `[type]`)."""
    return {r.line["message_content"] or f"[{r.line['message_type']}]": r for r in results}


def test_the_chat_file_holds_interaction_bodies_in_many_languages():
    lines = read_chat(DEFAULT_CHAT)
    assert 25 <= len(lines) <= 40
    for line in lines:
        assert {"session_id", "user_id", "entity_id", "platform", "username", "message_content",
                "message_id"} <= set(line)
    assert len({line["message_id"] for line in lines}) == len(lines)
    assert {"raid", "follow"} <= {line["message_type"] for line in lines}


def test_live_replay_answers_greetings_in_their_language_and_ignores_chatter(demo_service, capsys):
    llm, router, url = demo_service
    replayer = Replayer(url, ROUTER_KEY, ADMIN_KEY, wait=20)
    results = by_text(run(replayer, read_chat(DEFAULT_CHAT), dry_run=False, router=router))

    for text, opening in GREETED_IN.items():
        result = results[text]
        assert result.status == "answered" and result.trigger == "greeting", result
        assert result.provider == "ollama" and not result.fallback, result
        assert result.reply.startswith("🤖 " + opening), result
    assert {results[t].language for t in GREETED_IN} >= {"es", "fr", "ru", "ja", "ko", "zh", "en"}
    for text in ("@bob are you coming tonight?", "@sam yeah, after dinner", "nice stream", "lol", "!uptime"):
        assert results[text].status == "not answered" and results[text].reply is None, results[text]
    assert results["!lurk"].trigger == "farewell" and results["!lurk"].answered
    assert results["[raid]"].trigger == results["[follow]"].trigger == "event"
    assert results["[raid]"].answered and results["[follow]"].answered
    answered = [r for r in results.values() if r.answered]
    # every reply the router got belongs to a line shown answered, and nothing else was posted
    assert sorted(r["interaction_id"] for r in router.received) == sorted(r.interaction_id for r in answered)
    assert llm.calls == len(answered)
    printed = capsys.readouterr().out
    assert "¡Hola maria_gg, bienvenido al stream!" in printed and "talks to @bob, not to the bot" in printed


def test_dry_run_judges_every_line_and_posts_nothing(demo_service, capsys):
    llm, router, url = demo_service
    replayer = Replayer(url, admin_key=ADMIN_KEY)
    results = by_text(run(replayer, read_chat(DEFAULT_CHAT), dry_run=True, router=None))

    assert results["hola a todos!!"].status == "would answer"
    assert (results["hola a todos!!"].trigger, results["hola a todos!!"].language) == ("greeting", "es")
    assert results["@bob are you coming tonight?"].status == "not answered"
    assert results["nice stream"].status == "not answered"
    assert router.received == [] and llm.calls == 0
    assert "dry run (nothing posted)" in capsys.readouterr().out


def test_the_replay_command_refuses_a_dry_run_without_the_admin_key(capsys):
    from examples.replay import main

    with pytest.raises(SystemExit) as exit_:
        main(["--dry-run"])
    assert exit_.value.code == 2
    assert "--dry-run needs --admin-key" in capsys.readouterr().err


def test_the_fake_llm_speaks_the_language_the_system_message_names():
    from examples.fake_llm import answer

    system = {"role": "system", "content": "You are… The viewer greeted the chat; greet them back warmly.\n"
                                           "The viewer wrote in Korean: reply in Korean.\n"}
    assert answer([system, {"role": "user", "content": "minsu: 안녕"}]).startswith("minsu 님, 안녕하세요")
    event = [{"role": "system", "content": "A platform event happened; thank the viewer. reply in German."},
             {"role": "user", "content": "[raid event from raider_king]"}]
    assert answer(event) == "Vielen Dank, raider_king! Du bist großartig."
    assert answer([]) == "Good question, friend! We are playing through the story tonight."  # English by default
