"""Canned replies for when no LLM can answer (§3 step 7).

One short, friendly line per trigger and per event type, addressed to the viewer by name. A few
variants per kind keep the chat from looking robotic; the choice is random unless a
`random.Random` is passed. No prefix and no cleaning here: the caller runs `clean_reply`.
"""

from __future__ import annotations

import random

FALLBACK_NAME = "friend"  # used when the viewer has no usable name

TRIGGER_REPLIES: dict[str, tuple[str, ...]] = {
    "greeting": (
        "Hey {name}, welcome in! Great to see you here.",
        "Hi {name}! Glad you dropped by.",
        "Hello {name}, welcome to the stream!",
    ),
    "farewell": (
        "Thanks for hanging out, {name}! See you next time.",
        "Bye {name}, take care!",
        "Catch you later, {name}!",
    ),
    "question": (
        "Good question, {name}! My brain is taking a short break, so please ask again in a bit.",
        "Sorry {name}, I can't look that up right now. Try me again in a few minutes!",
    ),
    "command": (
        "Sorry {name}, I can't answer that right now. Please try again in a few minutes!",
        "My brain is taking a short break, {name}. Ask me again in a bit!",
    ),
    "mention": (
        "Hey {name}, I'm here! I'm a little slow right now, but I'll be back to full speed soon.",
        "Hi {name}! I can't chat properly at the moment, try again in a little while.",
    ),
}

EVENT_REPLIES: dict[str, tuple[str, ...]] = {
    "subscription": (
        "Thank you so much for subscribing, {name}!",
        "Welcome to the squad, {name}! Thanks for the sub!",
    ),
    "follow": (
        "Thanks for the follow, {name}! Welcome aboard.",
        "Welcome {name}, and thanks for following!",
    ),
    "donation": (
        "Wow, thank you for the donation, {name}! Your support means a lot.",
        "Thank you for your generosity, {name}!",
    ),
    "cheer": (
        "Thanks for the bits, {name}!",
        "Thank you for cheering, {name}!",
    ),
    "raid": (
        "Welcome, raiders! Thank you for the raid, {name}!",
        "Huge thanks for the raid, {name}! Welcome everybody!",
    ),
    "boost": (
        "Thank you for boosting the server, {name}!",
        "Thanks for the boost, {name}! You're awesome.",
    ),
}

GENERIC_EVENT_REPLIES: tuple[str, ...] = (
    "Thank you for the support, {name}!",
    "Thanks, {name}! Much appreciated.",
)

# Common spellings of the same events on other platforms / router versions.
EVENT_ALIASES: dict[str, str] = {
    "sub": "subscription", "subscribe": "subscription", "resub": "subscription",
    "resubscription": "subscription", "subgift": "subscription",
    "gift_subscription": "subscription",
    "followed": "follow", "tip": "donation", "bits": "cheer", "server_boost": "boost",
}


def variants(trigger: str, message_type: str = "") -> tuple[str, ...]:
    """The templates `fallback_reply` chooses from for this trigger / event type."""
    trigger = (trigger or "").strip().lower()
    if trigger == "event":
        kind = (message_type or "").strip().lower()
        return EVENT_REPLIES.get(EVENT_ALIASES.get(kind, kind), GENERIC_EVENT_REPLIES)
    return TRIGGER_REPLIES.get(trigger, TRIGGER_REPLIES["mention"])


def fallback_reply(
    trigger: str, message_type: str, name: str, *, rng: random.Random | None = None
) -> str:
    """A friendly canned reply for `trigger` (or, for "event", the event type) to `name`."""
    template = (rng or random).choice(variants(trigger, message_type))
    return template.format(name=(name or "").strip() or FALLBACK_NAME)
