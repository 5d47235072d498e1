"""Trigger detection (§4): words and phrases, never substrings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from tests.support import IsolatedSettings
from config.settings import Settings
from interactions.triggers import TRIGGER_ORDER, TriggerConfig, TriggerMatcher, matcher_for

DEFAULT = TriggerConfig()
CHAT = "chatMessage"
USER = "viewer42"

# (message, expected) for a chat message from an ordinary viewer, default configuration.
CHAT_CASES = [
    # every default greeting word and phrase
    ("hi", "greeting"),
    ("hello", "greeting"),
    ("hey", "greeting"),
    ("heya", "greeting"),
    ("hiya", "greeting"),
    ("howdy", "greeting"),
    ("greetings", "greeting"),
    ("sup", "greeting"),
    ("yo", "greeting"),
    ("o7", "greeting"),
    ("gm", "greeting"),
    ("good morning", "greeting"),
    ("good afternoon", "greeting"),
    ("good evening", "greeting"),
    # every default farewell word and phrase
    ("bye", "farewell"),
    ("goodbye", "farewell"),
    ("cya", "farewell"),
    ("see ya", "farewell"),
    ("see you", "farewell"),
    ("gtg", "farewell"),
    ("gotta go", "farewell"),
    ("good night", "farewell"),
    ("gn", "farewell"),
    # punctuation, emotes, case, position
    ("HELLO chat!!", "greeting"),
    ("o7 o7", "greeting"),
    ("hey!!!", "greeting"),
    ("(hi)", "greeting"),
    ("hi, how are you", "greeting"),
    ("well HeLLo there", "greeting"),
    ("PogChamp hi PogChamp", "greeting"),
    ("hi:)", "greeting"),
    ("<3 hey <3", "greeting"),
    ("'sup", "greeting"),
    ("sup' everyone", "greeting"),
    ("Good Morning everyone!", "greeting"),
    ("good   morning", "greeting"),
    ("GOOD NIGHT chat", "farewell"),
    ("ok gotta go, see you tomorrow", "farewell"),
    ("alright... bye!", "farewell"),
    ("cya later o/", "farewell"),
    ("see ya!", "farewell"),
    ("SEE YOU soon", "farewell"),
    # hyphenated words: one word, fire only as a whole trigger
    ("bye-bye", "farewell"),
    ("good-bye all", "farewell"),
    ("see-ya", "farewell"),
    ("hey-hey", "greeting"),
    ("the bye-law passed", None),
    ("my hi-fi is broken", None),
    # substring traps: must NOT fire
    ("this", None),
    ("they", None),
    ("super", None),
    ("which", None),
    ("cyan", None),
    ("2007", None),
    ("Ohio", None),
    ("hitbox", None),
    ("shiny", None),
    ("yoga", None),
    ("gnome", None),
    ("sigh", None),
    ("seeya", None),
    ("goodbyes", None),
    ("byebye", None),
    ("this is super shiny, they said", None),
    ("the hitbox in yoga simulator 2007 is cyan", None),
    ("gnomes sigh in Ohio", None),
    ("hi_there", None),
    ("sightseeing", None),
    ("greeting", None),
    ("good", None),
    ("see", None),
    ("good evening-ish", "greeting"),
    ("you see", None),
    ("night good", None),
    ("go gotta", None),
    # mentions
    ("@WaddleBot", "mention"),
    ("waddlebot", "mention"),
    ("WADDLEBOT!", "mention"),
    ("what do you think, @waddlebot", "mention"),
    ("is waddlebot's brain ok", "mention"),
    ("waddlebotfan", None),
    ("@waddlebotfan hello", None),  # said to another viewer
    ("mywaddlebot", None),
    # questions
    ("what?", "question"),
    ("really?!", "question"),
    ("is this real?", "question"),
    ("what???", "question"),
    ("¿qué hora es?", "question"),
    ("???", None),
    ("?", None),
    ("lol ???", None),
    ("what ?", "question"),  # one space before the mark, as French writes it
    ("https://example.com/watch?v=1", None),
    ("check https://example.com/watch?v=1 now", None),
    ("HTTP://EXAMPLE.COM/a?b=c", None),
    ("www.example.com/page?id=3", None),
    ("youtube.com/watch?v=abc", None),
    ("did you see https://example.com/watch?v=1 though?", "question"),
    ("https://hi.example.com/bye", None),
    ("www.hello.tv", None),
    ("HTTP://localhost:8080/hello?x=1", None),  # a link without a dot
    ("twitch.tv/waddlebot", None),
    ("hi.bye", "greeting"),
    # commands: the router owns them
    ("!hello", None),
    ("!so @waddlebot", None),
    ("!hi there", None),
    ("!lurking", None),
    ("!lurk", "farewell"),
    ("!LURK", "farewell"),
    ("!lurk back later", "farewell"),
    ("  !lurk", "farewell"),
    ("!!! hype", None),
    ("!!! hi streamer", "greeting"),
    ("I'm going to !lurk now", None),
    ("lurk", None),
    # empty
    ("", None),
    ("   ", None),
    ("\n\t", None),
    # unicode
    ("привет", "greeting"),  # the built-in Russian words
    ("héllo", None),
    ("hello 世界", "greeting"),
    ("こんにちは?", "greeting"),  # greeting comes before question
    ("héllo?", "question"),
    # priority: mention > greeting > farewell > question
    ("hi waddlebot", "mention"),
    ("@waddlebot bye", "mention"),
    ("waddlebot?", "mention"),
    ("hi and bye", "greeting"),
    ("bye hi", "greeting"),
    ("hey, how are you?", "greeting"),
    ("bye, what?", "farewell"),
    ("!lurk hi", "greeting"),
]


@pytest.mark.parametrize(("message", "expected"), CHAT_CASES)
def test_chat_message_triggers(message: str, expected: str | None) -> None:
    assert matcher_for(DEFAULT).detect(message, CHAT, USER) == expected


def test_table_is_large() -> None:
    assert len(CHAT_CASES) >= 80


@pytest.mark.parametrize("username", ["waddlebot", "WaddleBot", "@waddlebot", " WADDLEBOT "])
@pytest.mark.parametrize("message", ["hi", "@waddlebot what?", "bye", "!lurk", ""])
def test_bot_never_answers_itself(username: str, message: str) -> None:
    assert matcher_for(DEFAULT).detect(message, CHAT, username) is None
    assert matcher_for(DEFAULT).detect(message, "follow", username) is None


@pytest.mark.parametrize("event", ["subscription", "follow", "donation", "cheer", "raid", "boost"])
@pytest.mark.parametrize("text", ["", "   ", "thanks for the follow", "!so"])
def test_events_fire_even_without_text(event: str, text: str) -> None:
    assert matcher_for(DEFAULT).detect(text, event, USER) == "event"


@pytest.mark.parametrize("event", ["Subscription", "FOLLOW", " raid "])
def test_event_type_is_case_insensitive(event: str) -> None:
    assert matcher_for(DEFAULT).detect("", event, USER) == "event"


@pytest.mark.parametrize(("text", "expected"), [("hello", "greeting"), ("what?", "question"),
                                                ("@waddlebot", "mention"), ("", "event")])
def test_event_with_text_trigger_reports_the_higher_trigger(text: str, expected: str) -> None:
    assert matcher_for(DEFAULT).detect(text, "subscription", USER) == expected


@pytest.mark.parametrize("text", ["", "hello", "what?", "@waddlebot"])
def test_respond_to_events_false_silences_events(text: str) -> None:
    config = TriggerConfig(respond_to_events=False)
    assert matcher_for(config).detect(text, "follow", USER) is None


@pytest.mark.parametrize("message_type", ["chatMessage", "host", "ban", "unknownEvent"])
def test_non_event_types_with_empty_text_are_ignored(message_type: str) -> None:
    assert matcher_for(DEFAULT).detect("", message_type, USER) is None


def test_non_listed_type_uses_text_triggers() -> None:
    assert matcher_for(DEFAULT).detect("hello", "host", USER) == "greeting"


CUSTOM = TriggerConfig(
    bot_name="Captain Hook",
    greetings=("ahoy", "howdy partner", "!hello"),
    farewells=("fair winds", "!bye"),
    question_marks=("?", "？"),
    event_types=frozenset({"treasure"}),
)


@pytest.mark.parametrize(
    ("message", "message_type", "expected"),
    [
        ("ahoy mateys!", CHAT, "greeting"),
        ("AHOY", CHAT, "greeting"),
        ("ahoyhoy", CHAT, None),
        ("howdy partner", CHAT, "greeting"),
        ("howdy", CHAT, None),  # not in the custom list any more
        ("hello", CHAT, None),
        ("!hello", CHAT, "greeting"),  # a command named in a list is let through
        ("!bye", CHAT, "farewell"),
        ("!lurk", CHAT, None),  # not in the custom farewell list: just a command
        ("fair winds, friends", CHAT, "farewell"),
        ("bye", CHAT, None),
        ("captain hook, what now", CHAT, "mention"),
        ("@Captain Hook", CHAT, "mention"),
        ("captain", CHAT, None),
        ("なに？", CHAT, "question"),
        ("what?", CHAT, "question"),
        ("", "treasure", "event"),
        ("", "follow", None),
    ],
)
def test_custom_trigger_lists(message: str, message_type: str, expected: str | None) -> None:
    assert matcher_for(CUSTOM).detect(message, message_type, USER) == expected


def test_custom_bot_name_never_answers_itself() -> None:
    assert matcher_for(CUSTOM).detect("ahoy", CHAT, "captain hook") is None


def test_empty_bot_name_does_not_silence_nameless_users() -> None:
    assert matcher_for(TriggerConfig(bot_name="")).detect("hi", CHAT, "") == "greeting"


def test_no_question_marks_configured_disables_question() -> None:
    assert matcher_for(TriggerConfig(question_marks=())).detect("what?", CHAT, USER) is None


def test_from_settings_reads_comma_separated_lists() -> None:
    settings = Settings(
        greeting_triggers="ahoy,howdy partner",
        farewell_triggers="Fair Winds, !bye",
        question_triggers="?",
        event_response_types="Follow,raid",
        respond_to_events="true",
        bot_name="PirateBot",
    )
    config = TriggerConfig.from_settings(settings)
    assert config.greetings == ("ahoy", "howdy partner")
    assert config.farewells == ("fair winds", "!bye")
    assert config.event_types == frozenset({"follow", "raid"})
    assert config.respond_to_events is True
    matcher = matcher_for(config)
    assert matcher.detect("ahoy!", CHAT, USER) == "greeting"
    assert matcher.detect("howdy partner", CHAT, USER) == "greeting"
    assert matcher.detect("howdy", CHAT, USER) is None
    assert matcher.detect("fair winds", CHAT, USER) == "farewell"
    assert matcher.detect("!bye", CHAT, USER) == "farewell"
    assert matcher.detect("@piratebot", CHAT, USER) == "mention"
    assert matcher.detect("", "follow", USER) == "event"
    assert matcher.detect("", "cheer", USER) is None


def test_from_settings_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BOT_NAME", "GREETING_TRIGGERS", "FAREWELL_TRIGGERS", "QUESTION_TRIGGERS",
                "EVENT_RESPONSE_TYPES", "RESPOND_TO_EVENTS"):
        monkeypatch.delenv(var, raising=False)
    config = TriggerConfig.from_settings(IsolatedSettings())
    assert config == DEFAULT


def test_matcher_is_cached_per_config() -> None:
    assert matcher_for(TriggerConfig()) is matcher_for(TriggerConfig())
    assert matcher_for(CUSTOM) is not matcher_for(DEFAULT)
    assert isinstance(matcher_for(DEFAULT), TriggerMatcher)


def test_none_inputs_do_not_raise() -> None:
    assert matcher_for(DEFAULT).detect(None, None, None) is None  # type: ignore[arg-type]


ALLOWED = set(TRIGGER_ORDER) | {None}


@hyp_settings(max_examples=300, deadline=None)
@given(message=st.text(max_size=300), message_type=st.text(max_size=20),
       username=st.text(max_size=20))
def test_detect_never_raises_and_returns_allowed_value(
    message: str, message_type: str, username: str
) -> None:
    assert matcher_for(DEFAULT).detect(message, message_type, username) in ALLOWED
    assert matcher_for(CUSTOM).detect(message, message_type, username) in ALLOWED


SINGLE_WORD_TRIGGERS = {t for t in DEFAULT.greetings + DEFAULT.farewells if " " not in t}


@hyp_settings(max_examples=200, deadline=None)
@given(word=st.sampled_from(sorted(SINGLE_WORD_TRIGGERS - {"!lurk"})),
       before=st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True),
       after=st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True))
def test_trigger_inside_a_longer_word_never_fires(word: str, before: str, after: str) -> None:
    for text in (before + word, word + after, before + word + after):
        if text not in SINGLE_WORD_TRIGGERS:  # "hi"+"ya" is "hiya", itself a trigger
            assert matcher_for(DEFAULT).detect(text, CHAT, USER) is None, text


class _MeetsEverything(frozenset):
    """A set that shares an element with anything: forces detect() past its quiet-message shortcut."""

    def isdisjoint(self, other: object) -> bool:  # type: ignore[override]
        return False


def _without_shortcut(config: TriggerConfig) -> TriggerMatcher:
    matcher = TriggerMatcher(config)
    matcher._opening_words = _MeetsEverything()
    return matcher


_ENTRIES = DEFAULT.greetings + DEFAULT.farewells + CUSTOM.greetings + CUSTOM.farewells
_PIECES = sorted(set(_ENTRIES) | {w for t in _ENTRIES for w in t.split()} | {"Captain Hook", "captain", "waddlebot", "waddlebot's", "@waddlebot", "modbot", "good", "see",
                                         "gotta", "this", "super", "they", "bye-bye", "hi-fi", "see-ya",
                                         "good-bye", "www.hi.com", "hi.there/x", "!hi", "!lurk", "?", "!",
                                         "-", "'", ",", "…", "GOOD", "Hello"})


@hyp_settings(max_examples=500, deadline=None)
@given(words=st.lists(st.sampled_from(_PIECES) | st.text(max_size=6), max_size=8),
       joiner=st.sampled_from([" ", "", "-", "  ", ", "]))
def test_quiet_message_shortcut_answers_as_the_full_check(words: list[str], joiner: str) -> None:
    text = joiner.join(words)
    for config in (DEFAULT, CUSTOM):
        assert matcher_for(config).detect(text, CHAT, USER) == _without_shortcut(config).detect(text, CHAT, USER), text
