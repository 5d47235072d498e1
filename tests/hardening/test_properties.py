"""Property tests (hypothesis) that extend tests/interactions/test_triggers.py and test_reply_cleaning.py
(those already cover: detect never raises, triggers inside longer words never fire, the reply fits
the platform and never mass-pings, cuts keep whole words) with:

- triggers: decoration, case and position tolerance; commands, the bot itself, URLs never answered;
- reply cleaning: any text a provider can produce (lone surrogates included) gives a line that can
  be encoded and posted, one line on one-line platforms, mass mentions neutralised wherever they sit;
- SSE encoding (completions/stream.py): every frame is `data: <json>\\n\\n`, the JSON
  round-trips whatever the text, a whole stream keeps its framing and content;
- request validation: any bytes either fail as a ValidationError naming fields, or give a request
  that can be posted to the router and stored in PostgreSQL as it is.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from hypothesis import given, settings as hyp_settings, strategies as st
from pydantic import ValidationError

from web.admin_models import ConfigUpdate
from web.errors import from_validation_error
from interactions.model import InteractionRequest
from config.settings import DEFAULT_SYSTEM_PROMPT
from llm.types import StreamChunk
from completions.service import DONE, StreamFrame, StreamOutcome, sse, sse_events
from interactions.cleaning import MULTILINE_PLATFORMS, clean_reply, platform_limit
from interactions.triggers import TriggerConfig, matcher_for

DEFAULT = TriggerConfig()
MATCHER = matcher_for(DEFAULT)
CHAT = "chatMessage"
GREETING_WORDS = sorted(w for w in DEFAULT.greetings if " " not in w)
FAREWELL_WORDS = sorted(w for w in DEFAULT.farewells if " " not in w and not w.startswith("!"))
PHRASES = sorted([p for p in DEFAULT.greetings + DEFAULT.farewells if " " in p])
# Decorations glued to the word: no word characters (those would make one longer word, "<3hi" is
# the word "3hi"), no "?" (a question). Emotes with word characters come as separate words.
DECORATIONS = st.lists(st.sampled_from(["!!", "...", ":)", "(", ")", "/", "\U0001f389", "-", ",", ";",
                                        "\u2764\ufe0f", "~", "*", "\"", "'", ">>", "<<"]), max_size=3).map("".join)
NEUTRAL_WORDS = st.lists(st.sampled_from(["chat", "lol", "pog", "streamer", "today", "friends", "kappa", "this",
                                          "super", "they", "which", "2007", "ohio", "<3", "o7o", "PogU"]), max_size=3).map(" ".join)
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_TEXT = st.one_of(TEXT, st.lists(st.one_of(st.characters(), SURROGATES), max_size=200).map("".join))
PLATFORMS = st.sampled_from(["twitch", "discord", "slack", "kick", "youtube", "other"])
LIVE_MASS = re.compile(r"@(everyone|here)|<!(everyone|channel|here)[|>]|<@&\d*>", re.IGNORECASE)
HYP = hyp_settings(max_examples=300, deadline=None)


def spaced(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# --- triggers -----------------------------------------------------------------------------------
@HYP
@given(word=st.sampled_from(GREETING_WORDS + FAREWELL_WORDS + PHRASES), before=DECORATIONS, after=DECORATIONS,
       left=NEUTRAL_WORDS, right=NEUTRAL_WORDS, upper=st.booleans(), separator=st.sampled_from([" ", "  ", "\t"]))
def test_a_trigger_fires_whatever_decorates_it(word, before, after, left, right, upper, separator):
    expected = "greeting" if word in DEFAULT.greetings else "farewell"
    token = (word.upper() if upper else word).replace(" ", separator)
    message = spaced(left, before + token + after, right)
    assert MATCHER.detect(message, CHAT, "viewer") == expected, message


@HYP
@given(message=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120))
def test_ascii_case_never_matters(message):
    assert MATCHER.detect(message, CHAT, "viewer") == MATCHER.detect(message.swapcase(), CHAT, "viewer")


@HYP
@given(command=st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True), rest=TEXT)
def test_a_chat_command_is_never_answered_whatever_follows(command, rest):
    if command.lower() == "lurk":
        return  # the one command listed as a trigger
    assert MATCHER.detect(f"!{command} {rest}", CHAT, "viewer") is None


@HYP
@given(message=TEXT, at=st.booleans(), spaces=st.sampled_from(["", " ", "  "]),
       case=st.sampled_from([str.lower, str.upper, str.title]), message_type=st.sampled_from([CHAT, "raid", "follow"]))
def test_the_bot_never_answers_itself(message, at, spaces, case, message_type):
    username = spaces + ("@" if at else "") + case("waddlebot") + spaces
    assert MATCHER.detect(message, message_type, username) is None


@HYP
@given(scheme=st.sampled_from(["https://", "http://", "www.", "HTTPS://www."]),
       host=st.sampled_from(["hi.example.com", "example.com", "hello.tv", "bye.gg"]),
       path=st.lists(st.sampled_from(GREETING_WORDS + FAREWELL_WORDS + ["waddlebot", "x", "what"]), max_size=4),
       query=st.sampled_from(["", "?v=1", "?q=hello?", "?bye"]))
def test_words_and_question_marks_inside_links_never_count(scheme, host, path, query):
    url = f"{scheme}{host}/{'/'.join(path)}{query}"
    assert MATCHER.detect(url, CHAT, "viewer") is None, url
    assert MATCHER.detect(f"look {url} nice", CHAT, "viewer") is None, url


@HYP
@given(blank=st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=10))
def test_an_empty_chat_message_is_never_answered(blank):
    assert MATCHER.detect(blank, CHAT, "viewer") is None


# --- reply cleaning -----------------------------------------------------------------------------
@HYP
@given(text=ANY_TEXT, platform=PLATFORMS, prefix=st.sampled_from(["\U0001f916 ", "", "[bot] "]))
def test_any_provider_text_gives_a_line_that_can_be_posted(text, platform, prefix):
    out = clean_reply(text, platform=platform, prefix=prefix, system_prompt=DEFAULT_SYSTEM_PROMPT)
    if out is None:
        return
    out.encode("utf-8")  # postable as JSON to the router and storable in PostgreSQL
    json.dumps({"chat_message": out}, ensure_ascii=False).encode("utf-8")
    assert len(out) <= platform_limit(platform)
    if platform not in MULTILINE_PLATFORMS:
        assert "\n" not in out and "\r" not in out
    assert LIVE_MASS.search(out) is None, out


MASS = st.sampled_from(["@everyone", "@here", "@EveryOne", "@channel", "<!channel>", "<!here|here>",
                        "<!everyone>", "<@&123456>", "<@&>", "<!subteam^S1|@team>"])


@HYP
@given(parts=st.lists(st.one_of(MASS, st.text(max_size=40)), min_size=1, max_size=30), platform=PLATFORMS,
       pad=st.integers(min_value=0, max_value=4100))
def test_mass_mentions_are_neutralised_wherever_they_sit_even_at_the_cut(parts, platform, pad):
    text = "w " * (pad // 2) + "".join(parts)  # pushes the mentions around the platform's limit
    out = clean_reply(text, platform=platform)
    if out is not None:
        assert LIVE_MASS.search(out) is None, out[-200:]
        assert len(out) <= platform_limit(platform)


# --- SSE encoding -------------------------------------------------------------------------------
def utf16(text: str) -> str:
    """The text as a JSON reader sees it: two lone surrogates that form a pair are one character."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def data_of(frame: bytes) -> bytes:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n"), frame[:80]
    data = frame[len(b"data: "):-2]
    assert b"\n" not in data and b"\r" not in data, data[:80]  # one SSE line, whatever the text
    return data


@HYP
@given(text=ANY_TEXT, model=st.text(max_size=30), include_usage=st.booleans())
def test_every_frame_is_one_data_line_and_round_trips_the_text(text, model, include_usage):
    frame = StreamFrame("chatcmpl-x", 1700000000, model, include_usage)
    decoded = json.loads(data_of(frame.chunk({"content": text})))
    assert decoded["choices"][0]["delta"]["content"] == utf16(text)
    assert decoded["model"] == model
    assert json.loads(data_of(sse({"error": {"message": text}}))) == {"error": {"message": utf16(text)}}


async def _collect(frame: StreamFrame, texts: list[str]) -> list[bytes]:
    chunks = [StreamChunk(text=t, model="m") for t in texts] + [
        StreamChunk(model="m", finish_reason="stop", prompt_tokens=3, completion_tokens=len(texts))]

    async def rest():  # noqa: ANN202
        for chunk in chunks[1:]:
            yield chunk

    ended: list[StreamOutcome] = []
    writes = [part async for part in sse_events(frame, chunks[0], rest(), StreamOutcome(),
                                                lambda exc: {"error": repr(exc)}, ended.append)]
    assert [o.result for o in ended] == ["success"]
    # A write may carry several events; each event is one data line ended by a blank line.
    return [event + b"\n\n" for event in b"".join(writes).split(b"\n\n")[:-1]]


@hyp_settings(max_examples=150, deadline=None)
@given(texts=st.lists(ANY_TEXT, max_size=8), include_usage=st.booleans())
def test_a_whole_stream_keeps_its_framing_and_its_content(texts, include_usage):
    frame = StreamFrame("chatcmpl-y", 1700000000, "m", include_usage)
    frames = asyncio.run(_collect(frame, texts))
    assert frames[-1] == DONE
    payloads = [json.loads(data_of(f)) for f in frames[:-1]]
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"])
    assert content == "".join(utf16(t) for t in texts)
    finals = [p for p in payloads if p["choices"] and p["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    assert bool(include_usage) == any(p["choices"] == [] and p.get("usage") for p in payloads)


# --- request validation -------------------------------------------------------------------------
LIMITS = {"platforms": frozenset({"twitch", "discord"}), "max_message_chars": 500}
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 66), max_value=2 ** 66),
                    st.floats(), st.text(max_size=20), st.sampled_from(["\x00", "a\x00", "twitch"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
KEYS = st.sampled_from(["session_id", "user_id", "entity_id", "platform", "username", "display_name", "message_type",
                        "message_content", "message_id", "channel_id", "execution_id", "community_id", "metadata"])
BASE = {"session_id": "s", "user_id": "u", "entity_id": "e", "platform": "twitch", "username": "n"}


def as_json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN/Infinity as JavaScript writes them


# Values that pass the type checks, with what the store and the router cannot take mixed in.
STRINGS = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["a\x00b", "\x00"]))
PLAUSIBLE = st.fixed_dictionaries({}, optional={
    "user_id": STRINGS, "message_content": STRINGS, "display_name": STRINGS, "message_id": STRINGS,
    "community_id": st.one_of(st.integers(min_value=1, max_value=2 ** 40),
                              st.sampled_from([2 ** 31 - 1, 2 ** 31, 2 ** 63])),
    "metadata": st.dictionaries(st.text(max_size=4), st.one_of(st.floats(), STRINGS, VALUES), max_size=3)})


@hyp_settings(max_examples=500, deadline=None)
@given(changes=st.one_of(PLAUSIBLE, st.dictionaries(KEYS, VALUES, max_size=5)),
       raw=st.one_of(st.none(), st.none(), st.binary(max_size=80)))
def test_a_body_is_refused_naming_fields_or_accepted_and_then_postable_and_storable(changes, raw):
    body = raw if raw is not None else as_json({**BASE, **changes})
    try:
        req = InteractionRequest.model_validate_json(body, context=LIMITS)
    except ValidationError as exc:
        error = from_validation_error(exc)
        assert error.status == 400 and error.details
        assert all(d["field"] and d["message"] for d in error.details)
        return
    dumped = req.model_dump(mode="json")
    text = json.dumps(dumped, ensure_ascii=False, allow_nan=False)  # what the router receives (metadata)
    text.encode("utf-8")
    assert "\\u0000" not in json.dumps(dumped)  # PostgreSQL text/jsonb cannot hold NUL
    assert req.community_id is None or 0 < req.community_id <= 2_147_483_647  # PostgreSQL integer


ADMIN_PLAUSIBLE = st.fixed_dictionaries({}, optional={
    "model": STRINGS, "system_prompt": STRINGS, "temperature": st.floats(),
    "triggers": st.fixed_dictionaries({}, optional={"bot_name": STRINGS, "greetings": st.lists(STRINGS, max_size=3)})})


@HYP
@given(changes=st.one_of(ADMIN_PLAUSIBLE, st.dictionaries(
    st.sampled_from(["model", "system_prompt", "base_url", "temperature", "max_tokens", "triggers",
                     "user_cooldown_s", "provider"]), VALUES, max_size=4)))
def test_an_admin_update_is_refused_naming_fields_or_storable(changes):
    try:
        update = ConfigUpdate.model_validate_json(as_json(changes))
    except ValidationError as exc:
        assert all(d["field"] for d in from_validation_error(exc).details)
        return
    stored = json.dumps({k: v for k, v in update.changes().items() if k != "api_key"}, allow_nan=False)
    assert "\\u0000" not in stored
