"""Canned fallback replies (§3 step 7)."""

from __future__ import annotations

import random

import pytest

from config.settings import TRIGGER_LANGUAGE_CODES
from interactions.fallback_texts import FALLBACK_TEXTS
from interactions.fallbacks import FALLBACK_NAME, FALLBACK_NAMES, fallback_reply, variants
from interactions.cleaning import clean_reply

ENGLISH = FALLBACK_TEXTS["en"]
TRIGGER_REPLIES = {k: ENGLISH[k] for k in ("greeting", "farewell", "question", "mention", "command")}
EVENT_REPLIES = {k: ENGLISH[k] for k in ("subscription", "follow", "donation", "cheer", "raid", "boost")}
GENERIC_EVENT_REPLIES = ENGLISH["event"]

TRIGGERS = ["greeting", "farewell", "question", "mention", "command"]
EVENTS = ["subscription", "follow", "donation", "cheer", "raid", "boost"]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_each_trigger_has_its_own_replies(trigger: str) -> None:
    reply = fallback_reply(trigger, "chatMessage", "Alice")
    assert reply in {t.format(name="Alice") for t in TRIGGER_REPLIES[trigger]}
    assert "Alice" in reply


@pytest.mark.parametrize("event", EVENTS)
def test_each_event_type_has_its_own_replies(event: str) -> None:
    reply = fallback_reply("event", event, "Bob")
    assert reply in {t.format(name="Bob") for t in EVENT_REPLIES[event]}
    assert "Bob" in reply


@pytest.mark.parametrize(("alias", "event"), [("sub", "subscription"), ("resub", "subscription"),
                                              ("bits", "cheer"), ("tip", "donation"),
                                              ("Subscription", "subscription"), (" RAID ", "raid")])
def test_event_aliases_and_case(alias: str, event: str) -> None:
    assert variants("event", alias) == EVENT_REPLIES[event]


@pytest.mark.parametrize("event", ["host", "hype_train", "", "chatMessage"])
def test_other_event_types_get_the_generic_event_reply(event: str) -> None:
    generic = {t.format(name="Cy") for t in GENERIC_EVENT_REPLIES}
    assert fallback_reply("event", event, "Cy") in generic


@pytest.mark.parametrize("trigger", ["", "unknown", None])
def test_unknown_trigger_falls_back_to_mention_text(trigger: str | None) -> None:
    assert variants(trigger, "chatMessage") == TRIGGER_REPLIES["mention"]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "   ", None])
def test_missing_name_uses_a_friendly_default(name: str | None) -> None:
    reply = fallback_reply("greeting", "chatMessage", name)  # type: ignore[arg-type]
    assert FALLBACK_NAME in reply and "{" not in reply


@pytest.mark.parametrize("name", ["{name}", "{0}", "Zoë 🎮", "x" * 40])
def test_names_are_inserted_verbatim(name: str) -> None:
    for trigger in TRIGGERS:
        assert name in fallback_reply(trigger, "chatMessage", name)


def test_deterministic_with_a_seeded_rng() -> None:
    first = [fallback_reply("greeting", "", "Dee", rng=random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1


def test_every_variant_is_reachable() -> None:
    rng = random.Random(1)
    seen = {fallback_reply("farewell", "", "Eve", rng=rng) for _ in range(200)}
    assert seen == {t.format(name="Eve") for t in TRIGGER_REPLIES["farewell"]}


ALL_TEMPLATES = [t for texts in FALLBACK_TEXTS.values() for ts in texts.values() for t in ts]


@pytest.mark.parametrize("template", ALL_TEMPLATES)
def test_templates_are_short_unprefixed_and_survive_cleaning(template: str) -> None:
    text = template.format(name="Alice")
    assert "{name}" in template and 0 < len(text) <= 200
    assert not text.startswith("\U0001f916")
    assert clean_reply(text, platform="twitch") == "\U0001f916 " + text


def test_mass_mention_name_is_neutralised_by_cleaning() -> None:
    out = clean_reply(fallback_reply("greeting", "", "@everyone"), platform="discord")
    assert out is not None and "@\u200beveryone" in out


KINDS = TRIGGERS + EVENTS + ["event"]


@pytest.mark.parametrize("language", TRIGGER_LANGUAGE_CODES)
def test_every_language_has_every_trigger_and_event_type(language: str) -> None:
    assert set(FALLBACK_TEXTS[language]) == set(KINDS)
    assert language in FALLBACK_NAMES


@pytest.mark.parametrize("language", [code for code in TRIGGER_LANGUAGE_CODES if code != "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_language_answers_in_its_own_words(language: str, kind: str) -> None:
    trigger, event = ("event", kind) if kind in EVENTS + ["event"] else (kind, "chatMessage")
    reply = fallback_reply(trigger, event, "Alice", language=language)
    assert reply in {t.format(name="Alice") for t in FALLBACK_TEXTS[language][kind]}
    assert reply not in {t.format(name="Alice") for t in FALLBACK_TEXTS["en"][kind]}


@pytest.mark.parametrize("language", [None, "", "xx", "EN"])
def test_unknown_language_answers_in_english(language: str | None) -> None:
    assert fallback_reply("greeting", "", "Bo", language=language) in {
        t.format(name="Bo") for t in ENGLISH["greeting"]}


def test_missing_name_is_said_in_the_reply_language() -> None:
    assert FALLBACK_NAMES["es"] in fallback_reply("greeting", "", "", language="es")
    assert FALLBACK_NAMES["ja"] in fallback_reply("farewell", "", " ", language="ja")
