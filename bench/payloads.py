"""Request bodies shared by both load generators (wrk's Lua script and bench/loadgen.py).

Interaction bodies look like what the router posts (≈480 bytes) and are unique per request:
the message id, session and execution ids carry a per-run prefix and a per-request counter, so the
service never answers "duplicate". Users and channels vary with the counter:

- `users=N`    → user = n % N (N distinct users cycling); `users=0` → every request a new user.
- `channels=N` → channel = n % N; `channels=0` → a new channel every 10 requests.

The texts are checked against the service's own trigger matcher (`check_texts`), so "non-trigger"
really ends as outcome `ignored` and "trigger" really asks the LLM.
"""

from __future__ import annotations

import json

# Realistic chat lines that fire no trigger (no greeting/farewell word, no "?" after a word,
# no bot mention, no command). Verified by check_texts().
QUIET_TEXTS = (
    "that clutch was insane PogChamp",
    "LUL the chat is wild today",
    "this song is an absolute banger",
    "GG 🔥🔥 what a comeback",
    "nice shot, clean headshot KEKW",
    "the boss fight music slaps so hard",
    "lets go team we got this",
    "super close round, respect to both sides",
)
# Lines that fire a trigger (greeting, question, farewell): the LLM is asked.
TRIGGER_TEXTS = (
    "hello chat! how is everyone doing",
    "what game is this?",
    "good morning from Berlin o7",
    "gotta go, great stream everyone",
)

# Positional %-template: the same string is used by Python (bytes % tuple) and Lua (string.format).
INTERACTION_TEMPLATE = (
    '{"session_id":"sess-%s-%d","user_id":"user-%d","entity_id":"twitch:channel:%d",'
    '"platform":"twitch","username":"viewer%d","display_name":"Viewer %d",'
    '"message_type":"chatMessage","message_content":"%s","message_id":"%s-%d",'
    '"channel_id":"%d","execution_id":"exec-%s-%d",'
    '"metadata":{"source":"bench","badges":["subscriber","premium"],"color":"#1E90FF"}}'
)
# The names of the template's arguments, in order (Lua builds its call from this list).
INTERACTION_ARGS = ("run", "n", "u", "c", "u", "u", "text", "run", "n", "c", "run", "n")

OPENAI_MODEL = "gpt-4o-mini"


def openai_body(stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": OPENAI_MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant in a stream chat."},
            {"role": "user", "content": "Write one short sentence about penguins."},
        ],
        "max_tokens": 64,
        "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def user_of(n: int, users: int) -> int:
    return n % users if users else n


def channel_of(n: int, channels: int) -> int:
    return n % channels if channels else n // 10


def interaction_body(run: str, n: int, *, trigger: bool | int = False, users: int = 10_000,
                     channels: int = 500) -> bytes:
    """trigger: False (quiet text), True (trigger text) or k ≥ 2 (every k-th request a trigger)."""
    if trigger is True or trigger is False:
        texts = TRIGGER_TEXTS if trigger else QUIET_TEXTS
    else:
        texts = TRIGGER_TEXTS if n % int(trigger) == 0 else QUIET_TEXTS
    values = {"run": run, "n": n, "u": user_of(n, users), "c": channel_of(n, channels),
              "text": texts[n % len(texts)]}
    return (INTERACTION_TEMPLATE % tuple(values[a] for a in INTERACTION_ARGS)).encode()


def check_texts() -> None:
    """Fail loudly when a "quiet" text would fire a trigger (or a trigger text would not)."""
    from services.triggers import TriggerConfig, matcher_for

    matcher = matcher_for(TriggerConfig())
    for text in QUIET_TEXTS:
        fired = matcher.detect(text, "chatMessage", "viewer1")
        if fired is not None:
            raise AssertionError(f"bench quiet text fires {fired!r}: {text!r}")
    for text in TRIGGER_TEXTS:
        if matcher.detect(text, "chatMessage", "viewer1") is None:
            raise AssertionError(f"bench trigger text fires nothing: {text!r}")
    json.loads(interaction_body("x", 1))  # the template is valid JSON
