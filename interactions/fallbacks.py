"""Canned replies for when no LLM can answer (§3 step 7), in the viewer's language.

One short, friendly line per trigger and per event type, addressed to the viewer by name, in each
language of TRIGGER_LANGUAGES (interactions/fallback_texts.py); English when the language is unknown.
A few variants per kind keep the chat from looking robotic; the choice is random unless a
`random.Random` is passed. No prefix and no cleaning here: the caller runs `clean_reply`.
"""

from __future__ import annotations

import random

from interactions.fallback_texts import FALLBACK_TEXTS

DEFAULT_LANGUAGE = "en"
# Used when the viewer has no usable name.
FALLBACK_NAMES = {"en": "friend", "es": "amigo", "pt": "amigo", "fr": "l'ami", "de": "Freund",
                  "it": "amico", "ru": "друг", "ja": "ゲスト", "ko": "시청자", "zh": "朋友"}
FALLBACK_NAME = FALLBACK_NAMES[DEFAULT_LANGUAGE]
TRIGGERS = ("greeting", "farewell", "question", "mention", "command")
EVENT_TYPES = ("subscription", "follow", "donation", "cheer", "raid", "boost")

# Common spellings of the same events on other platforms / router versions.
EVENT_ALIASES: dict[str, str] = {
    "sub": "subscription", "subscribe": "subscription", "resub": "subscription",
    "resubscription": "subscription", "subgift": "subscription",
    "gift_subscription": "subscription",
    "followed": "follow", "tip": "donation", "bits": "cheer", "server_boost": "boost",
}


def variants(trigger: str, message_type: str = "", language: str | None = None) -> tuple[str, ...]:
    """The templates `fallback_reply` chooses from for this trigger / event type and language."""
    texts = FALLBACK_TEXTS.get((language or "").strip().lower()) or FALLBACK_TEXTS[DEFAULT_LANGUAGE]
    trigger = (trigger or "").strip().lower()
    if trigger == "event":
        kind = (message_type or "").strip().lower()
        return texts.get(EVENT_ALIASES.get(kind, kind)) or texts["event"]
    return texts.get(trigger) if trigger in TRIGGERS else texts["mention"]


def fallback_reply(trigger: str, message_type: str, name: str, *, language: str | None = None,
                   rng: random.Random | None = None) -> str:
    """A friendly canned reply for `trigger` (or, for "event", the event type) to `name`."""
    template = (rng or random).choice(variants(trigger, message_type, language))
    code = language if language in FALLBACK_TEXTS else DEFAULT_LANGUAGE
    return template.format(name=(name or "").strip() or FALLBACK_NAMES.get(code, FALLBACK_NAME))
