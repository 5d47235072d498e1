"""§4 in real, multilingual chat: normalisation, the built-in vocabularies, in-run matching for
scripts without spaces, the question-mark rules, talk between viewers, and the reply's language."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from config.community import TriggerConfig
from config.settings import TRIGGER_LANGUAGE_CODES
from interactions.triggers import matcher_for, normalize
from interactions.vocabulary import VOCABULARIES
from tests.interactions.multilingual_chat import ALL_ROWS, TRIGGER_ONLY
from tests.support import IsolatedSettings

DEFAULT = TriggerConfig()
CHAT = "chatMessage"


def match(message: str, config: TriggerConfig = DEFAULT):
    return matcher_for(config).match(message, CHAT, "viewer42")


@pytest.mark.parametrize(("message", "trigger", "language"), ALL_ROWS)
def test_labelled_chat(message: str, trigger: str | None, language: str | None) -> None:
    found = match(message)
    assert found.trigger == trigger, found.reason
    if trigger is not None:  # the language a silent line is in does not matter
        assert found.language == language


@pytest.mark.parametrize(("message", "trigger"), TRIGGER_ONLY)
def test_more_labelled_chat(message: str, trigger: str | None) -> None:
    assert match(message).trigger == trigger, match(message).reason


def test_every_language_has_positives_and_look_alikes() -> None:
    from tests.interactions import multilingual_chat as corpus
    for table in (corpus.SPANISH, corpus.PORTUGUESE, corpus.FRENCH, corpus.GERMAN, corpus.ITALIAN,
                  corpus.RUSSIAN, corpus.JAPANESE, corpus.KOREAN, corpus.CHINESE):
        assert sum(1 for _, t, _ in table if t) >= 8 and sum(1 for _, t, _ in table if t is None) >= 4


# --- normalisation -------------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "trigger"), [
    ("Ｈｅｌｌｏ", "greeting"),            # full-width letters
    ("ＨＥＬＬＯ ｃｈａｔ", "greeting"),
    ("𝐡𝐞𝐥𝐥𝐨", "greeting"),               # mathematical bold
    ("ＢＹＥ", "farewell"),
    ("ｗｈａｔ？", "question"),             # full-width question mark
    ("ＨＯＬＡ", "greeting"),
    ("ПРИВЕТ", "greeting"),
    ("TSCHÜSS", "farewell"),               # capital umlaut
    ("Grüß Gott", "greeting"),             # ß folds to ss on both sides
    ("ＷＡＤＤＬＥＢＯＴ", "mention"),
])
def test_nfkc_and_case_folding(message: str, trigger: str) -> None:
    assert match(message).trigger == trigger


# --- languages ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("language", "word"), [(code, word) for code, v in VOCABULARIES.items()
                                               for word in v.greetings + v.farewells])
def test_every_built_in_word_fires_alone_and_only_when_its_language_is_listed(language: str, word: str) -> None:
    kind = "greeting" if word in VOCABULARIES[language].greetings else "farewell"
    assert match(word).trigger == kind
    others = tuple(code for code in TRIGGER_LANGUAGE_CODES if code != language)
    assert match(word, TriggerConfig(languages=others)).trigger in (None, kind)  # another language may share it
    assert match(word, TriggerConfig(languages=("en",))).trigger is None


@pytest.mark.parametrize(("language", "word"), [(code, word) for code, v in VOCABULARIES.items()
                                               for word in v.greetings + v.farewells
                                               if re.fullmatch(r"[^\W\d_]+", word) and not any(
                                                   "\u1100" <= c for c in word)])
def test_a_built_in_word_inside_a_longer_word_never_fires(language: str, word: str) -> None:
    for longer in (f"x{word}", f"{word}x", f"un{word}ed"):
        assert match(longer).trigger is None, longer


@pytest.mark.parametrize(("message", "language"), [
    ("hola", "es"), ("olá", "pt"), ("bonjour", "fr"), ("hallo", "de"), ("ciao", "it"),
    ("привет", "ru"), ("こんにちは", "ja"), ("안녕하세요", "ko"), ("你好", "zh"),
    ("hi, wie gehts euch?", "de"), ("hello tout le monde, ça va", "fr"), ("hey como estas", "es"),
    ("hi everyone, how are you", "en"),
])
def test_the_language_of_the_trigger(message: str, language: str) -> None:
    assert match(message).language == language


@pytest.mark.parametrize(("message", "language"), [
    ("@waddlebot hola", "es"), ("waddlebot tchau", "pt"), ("@WaddleBot привет", "ru"), ("@bob hallo", "de"),
])
def test_a_mention_or_a_line_to_another_viewer_takes_the_language_of_its_greeting(message: str, language: str) -> None:
    assert match(message).language == language


def test_unlisted_languages_are_never_reported() -> None:
    only = TriggerConfig(languages=("en", "es"))
    assert match("привет waddlebot", only).language is None
    assert match("привет", only).trigger is None


def test_trigger_languages_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IsolatedSettings(trigger_languages="es, PT").trigger_languages == ["es", "pt"]
    with pytest.raises(ValueError, match="trigger_languages"):
        IsolatedSettings(trigger_languages="es,xx")


# --- scripts without spaces -----------------------------------------------------------------------

@pytest.mark.parametrize(("message", "trigger"), [
    ("こんにちは皆さん", "greeting"),
    ("皆さんこんばんは", "greeting"),
    ("今日もおはようございます！", "greeting"),
    ("じゃあねまた明日", "farewell"),
    ("主播你好", "greeting"),
    ("大家晚上好", "greeting"),
    ("我先走了拜拜", "farewell"),
    ("민수야안녕", "greeting"),
    ("여러분안녕하세요", "greeting"),
    ("안녕히계세요", "farewell"),        # the goodbye that contains 안녕 (hi)
    ("안녕히 가세요 여러분", "farewell"),
    ("你好看", None),                     # "you look good", not "hello"
    ("你好帅啊", None),
    ("하이라이트", None),                 # "highlight" contains 하이 (hi)
    ("おつまみ", None),                   # snacks, not おつ
    ("嗨翻了", None),
])
def test_in_run_matching(message: str, trigger: str | None) -> None:
    assert match(message).trigger == trigger


# --- question marks -------------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "trigger"), [
    ("元気？", "question"),
    ("Comment ça va ?", "question"),
    ("c'est quoi ?", "question"),
    ("¿Qué hora es?", "question"),
    ("¿Qué hora es ?", "question"),
    ("what ?", "question"),
    ("lol ???", None),
    ("???", None),
    ("？？？", None),
    ("ok  ?", None),                      # two spaces: not attached to the word
    ("https://example.com/?q=1", None),
    ("regarde https://example.com/page?x=1 !", None),
])
def test_question_marks(message: str, trigger: str | None) -> None:
    assert match(message).trigger == trigger


# --- talk between viewers -------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "trigger"), [
    ("@bob are you coming tonight?", None),
    ("@bob hi", None),
    ("hi @bob", None),
    ("@maria hola!", None),
    ("@太郎 こんにちは", None),
    ("@bob bye", None),
    ("@bob hi waddlebot", "mention"),      # names the bot too
    ("@waddlebot are you there?", "mention"),
    ("@WaddleBot привет", "mention"),
    ("mail me at bob@example.com hi", "greeting"),  # an address is not a mention
    ("hi @", "greeting"),
])
def test_talk_between_viewers(message: str, trigger: str | None) -> None:
    assert match(message).trigger == trigger


def test_events_still_fire_when_they_mention_someone() -> None:
    found = matcher_for(DEFAULT).match("gifted a sub to @bob", "subscription", "viewer")
    assert found.trigger == "event"


def test_the_reason_says_why_nothing_fired() -> None:
    assert "@bob" in match("@bob hi").reason
    assert "command" in match("!dice").reason
    assert match("just chatting").reason.startswith("no trigger word")
    assert matcher_for(DEFAULT).match("hi", CHAT, "WaddleBot").reason == "the bot's own message"


# --- English is as it was -------------------------------------------------------------------------

ENGLISH_CHAT = (
    "the and is are you i it to what how this that my your do in of for have with not can was just so we "
    "they be will game playing doing going there here everyone guys today thanks lol lmao pog poggers gg "
    "nice wow omg kappa lul streamer chat stream clip hype let's go boss fight run again more play win "
    "lose dead yes no maybe sure ok okay cool great love it's what's that's super they this those "
    "hi hello hey heya hiya howdy greetings sup yo o7 gm good morning afternoon evening bye goodbye cya "
    "see ya you gtg gotta go night gn later soon tomorrow back brb afk real quick sub follow"
).split()


@hyp_settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(ENGLISH_CHAT), min_size=1, max_size=8),
       st.sampled_from([" ", ", ", "! ", " ... "]), st.sampled_from(["", "?", "!", " :)"]))
def test_english_decisions_do_not_depend_on_the_other_languages(words: list[str], joiner: str, end: str) -> None:
    message = joiner.join(words) + end
    english_only = TriggerConfig(languages=("en",))
    assert match(message).trigger == match(message, english_only).trigger


def test_normalize_is_nfkc_and_casefold() -> None:
    assert normalize("Ｓｔｒａßｅ\u2019s") == "strasse's"
