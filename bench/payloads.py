"""Request bodies, shared by wrk's Lua script and bench/driver.py.

Interaction bodies look like what the router posts (≈480 bytes) and are unique per request: message,
session and execution ids carry a per-run prefix and a counter n, so the service never answers
"duplicate". user = n % users (users=0: a new user per request); channel = n % channels (channels=0:
a new channel every 10 requests). Quiet texts fire no trigger; trigger texts ask the LLM (the ack row
checks that the fake LLM saw no call, the e2e row counts the replies).
"""

from __future__ import annotations

import json

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
TRIGGER_TEXTS = (
    "hello chat! how is everyone doing",
    "what game is this?",
    "good morning from Berlin o7",
    "gotta go, great stream everyone",
)

# Positional %-template: the same string serves Python (str % tuple) and Lua (string.format).
INTERACTION_TEMPLATE = (
    '{"session_id":"sess-%s-%d","user_id":"user-%d","entity_id":"twitch:channel:%d",'
    '"platform":"twitch","username":"viewer%d","display_name":"Viewer %d",'
    '"message_type":"chatMessage","message_content":"%s","message_id":"%s-%d",'
    '"channel_id":"%d","execution_id":"exec-%s-%d",'
    '"metadata":{"source":"bench","badges":["subscriber","premium"],"color":"#1E90FF"}}'
)
INTERACTION_ARGS = ("run", "n", "u", "c", "u", "u", "text", "run", "n", "c", "run", "n")

OPENAI_MODEL = "gpt-4o-mini"
# The streaming rows' answers: this many one-word chunks, this far apart (the fake's token_delay)
STREAM_CHUNKS, STREAM_GAP_S = 100, 0.02
STREAM_REPLY = " ".join(f"w{i}" for i in range(STREAM_CHUNKS))
OPENAI_MESSAGES = [{"role": "system", "content": "You are a helpful assistant in a stream chat."},
                   {"role": "user", "content": "Write one short sentence about penguins."}]


def openai_body(stream: bool = False) -> bytes:
    body: dict[str, object] = {
        "model": OPENAI_MODEL,
        "messages": OPENAI_MESSAGES,
        "max_tokens": 64, "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def interaction_body(run: str, n: int, trigger: bool | int = False, users: int = 10_000,
                     channels: int = 500) -> bytes:
    """trigger: False (quiet), True (trigger) or k ≥ 2 (every k-th request a trigger text)."""
    if isinstance(trigger, bool):
        texts = TRIGGER_TEXTS if trigger else QUIET_TEXTS
    else:
        texts = TRIGGER_TEXTS if n % trigger == 0 else QUIET_TEXTS
    values = {"run": run, "n": n, "u": n % users if users else n,
              "c": n % channels if channels else n // 10, "text": texts[n % len(texts)]}
    return (INTERACTION_TEMPLATE % tuple(values[a] for a in INTERACTION_ARGS)).encode()
