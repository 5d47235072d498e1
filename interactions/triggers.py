"""Decide whether a chat message or platform event deserves an answer (§4), and in which language.

Runs on the hot path for every message, so all patterns and word sets are built once per
configuration (`TriggerMatcher.__init__`) and shared through the `matcher_for` cache.

Text is compared after Unicode NFKC and case folding ("Ｈｅｌｌｏ" is "hello", "？" is "?").
Matching is on whole words and consecutive-word phrases, never substrings: the message is split
into `\\w`-words (so "this", "super", "they", "2007" never contain "hi", "sup", "hey", "o7").
A word may hold inner hyphens or apostrophes ("bye-law", "hi-fi", "y'all" are one word); a
hyphenated word still fires when it *is* a trigger once the hyphens are dropped ("good-bye") or
spaced ("see-ya"), or when every part is a trigger ("bye-bye", "hey-hey").

The greeting and farewell lists are the operator's (GREETING_TRIGGERS / FAREWELL_TRIGGERS, the
English defaults) plus the built-in vocabularies of TRIGGER_LANGUAGES (interactions/vocabulary.py).
Built-in words also match stretched ("holaaa", "tchauuu"); the operator's English list is matched
exactly as before. Japanese, Chinese and Korean words match inside a run of text ("こんにちは皆さん").
A message that @-mentions someone other than the bot, and does not name the bot, is talk between
viewers: no greeting, farewell or question fires for it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterable

from config.community import TriggerConfig
from interactions.vocabulary import (ADDRESSEES, ENGLISH_MARKERS, JAPANESE_ONLY_HAN, SIMPLIFIED_ONLY_HAN,
                                     VOCABULARIES)

TRIGGER_ORDER = ("mention", "greeting", "farewell", "question", "event")

_CJK = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_WORD = re.compile(r"\w+(?:['\-]\w+)*")
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)+/\S*", re.IGNORECASE)
_COMMAND = re.compile(r"!(\w+)")  # "!" followed by a word character, at the message start
_AT_NAME = re.compile(r"(?<![\w@])@(\w[\w.\-]*\w|\w)")
_STRETCHED = re.compile(r"(\w)\1\1+")  # a letter written three or more times: "holaaa"


def normalize(text: str) -> str:
    """NFKC, case folding, and the typographic apostrophe as a plain one."""
    if text.isascii():  # most chat: NFKC leaves ASCII as it is
        return text.casefold()
    return unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")


def _words(normalized: str) -> list[str]:
    if not normalized.isascii() and _CJK_RUN.search(normalized):  # a run of CJK is a word of its own, even glued to Latin letters
        normalized = _CJK_RUN.sub(lambda m: f" {m.group(0)} ", normalized)
    return _WORD.findall(normalized)


def _unstretch(token: str) -> str:
    return _STRETCHED.sub(r"\1", token)


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """What `TriggerMatcher.match` found: the trigger (None: stay silent), the language of the
    message when it can tell (a TRIGGER_LANGUAGES code), the words that decided, and why."""

    trigger: str | None
    language: str | None = None
    word: str | None = None
    reason: str = ""


class _WordList:
    """One trigger list, precompiled: single words, multi-word phrases and `!commands`.

    `entries` maps each entry to its languages (empty: the operator's own word, language unknown).
    """

    def __init__(self, entries: dict[str, tuple[str, ...]], standalone: frozenset[str],
                 stretchable: frozenset[str]) -> None:
        words: dict[str, tuple[str, ...]] = {}
        phrases: dict[str, tuple[str, ...]] = {}
        commands: set[str] = set()
        for entry, languages in entries.items():
            entry = entry.strip()
            if entry.startswith("!") and _COMMAND.fullmatch(entry):
                commands.add(normalize(entry[1:]))
                continue
            tokens = _words(normalize(entry))
            if len(tokens) == 1:
                words[tokens[0]] = words.get(tokens[0], ()) + languages
            elif tokens:
                key = " ".join(tokens)
                phrases[key] = phrases.get(key, ()) + languages
        self.words = words
        self.phrases = tuple((f" {p} ", p) for p in sorted(phrases))
        # built-in phrases also match stretched ("bom diaaa"); the operator's (English) ones do not
        self.stretchable_phrases = tuple((padded, p) for padded, p in self.phrases
                                         if phrases[p] and "en" not in phrases[p])
        self.phrase_languages = phrases
        self.commands = frozenset(commands)
        self.standalone = standalone
        self.stretchable = stretchable

    def languages(self, entry: str) -> tuple[str, ...]:
        return self.words.get(entry) or self.phrase_languages.get(entry, ())

    def _word(self, token: str) -> str | None:
        words = self.words
        if token in words:
            return token
        if "-" in token:
            parts = token.split("-")
            joined = "".join(parts)
            if joined in words:
                return joined
            if all(p in words for p in parts):
                return parts[0]
        plain = _unstretch(token)
        if plain != token and plain in self.stretchable and plain in words:
            return plain
        return None

    def find(self, tokens: list[str], spaced: str, alone: Callable[[], bool]) -> str | None:
        """The first entry of this list in the message (`spaced`: its words, hyphens as spaces,
        padded). A standalone entry counts only when `alone()` says the message is little more."""
        for token in tokens:
            hit = self._word(token)
            if hit is not None and (hit not in self.standalone or alone()):
                return hit
        for padded, phrase in self.phrases:
            if padded in spaced and (phrase not in self.standalone or alone()):
                return phrase
        if self.stretchable_phrases and _STRETCHED.search(spaced):
            plain = _unstretch(spaced)
            for padded, phrase in self.stretchable_phrases:
                if padded in plain and (phrase not in self.standalone or alone()):
                    return phrase
        return None


class TriggerMatcher:
    """`match()` / `detect()` for one TriggerConfig; build it once (see `matcher_for`)."""

    def __init__(self, config: TriggerConfig) -> None:
        self.config = config
        self.languages = tuple(dict.fromkeys(code.strip().lower() for code in config.languages))
        self._bot = normalize(config.bot_name.strip().lstrip("@"))
        bot_tokens = _words(self._bot)
        bot_phrase = " ".join(bot_tokens)
        self._bot_tokens = frozenset(bot_tokens)
        self._mention = (_WordList({bot_phrase: (), f"{bot_phrase}'s": ()}, frozenset(), frozenset())
                         if bot_phrase else None)
        vocabularies = [(code, VOCABULARIES[code]) for code in self.languages if code in VOCABULARIES]
        english = TriggerConfig()
        defaults = {normalize(w) for w in english.greetings + english.farewells}

        def entries(own: Iterable[str], builtin: str) -> dict[str, tuple[str, ...]]:
            out: dict[str, tuple[str, ...]] = {}
            for word in own:  # the operator's list: English when it is one of the default words
                out[word] = ("en",) if normalize(word) in defaults and "en" in self.languages else ()
            for code, vocab in vocabularies:
                for word in getattr(vocab, builtin):
                    out[word] = out.get(word, ()) + (code,)
            return out

        standalone = frozenset(normalize(w) for _, v in vocabularies for w in v.standalone)
        stretchable = frozenset(t for _, v in vocabularies for w in v.greetings + v.farewells
                                for t in _words(normalize(w)))
        self._greetings = _WordList(entries(config.greetings, "greetings"), standalone, stretchable)
        self._farewells = _WordList(entries(config.farewells, "farewells"), standalone, stretchable)
        self._in_run, self._in_run_kinds = self._in_run_pattern(vocabularies)
        self._markers = {code: v.markers for code, v in vocabularies}
        if "en" in self.languages:
            self._markers["en"] = ENGLISH_MARKERS
        marks = [m for m in (normalize(m.strip()) for m in config.question_marks) if m]
        # A mark right after a word, or one mark alone after one space ("ça va ?", not "lol ???").
        any_mark = "|".join(re.escape(m) for m in marks)
        self._question = (re.compile(r"\w(?:%s| (?:%s)(?!%s))" % (any_mark, any_mark, any_mark))
                          if marks else None)
        self._commands = self._greetings.commands | self._farewells.commands
        self._events = frozenset(t.strip().lower() for t in config.event_types)
        # Most chat fires nothing: a message none of whose words is a trigger word or the first word
        # of a trigger phrase cannot match a list (hyphenated, stretched and CJK words aside).
        lists = [w for w in (self._mention, self._greetings, self._farewells) if w is not None]
        self._opening_words = frozenset().union(*(w.words for w in lists),
                                                (p.split()[0] for w in lists for _, p in w.phrases))
        self._known = self._opening_words | ADDRESSEES | self._bot_tokens

    @staticmethod
    def _in_run_pattern(vocabularies: list) -> tuple[re.Pattern[str] | None, dict[str, tuple[str, str]]]:
        """One pattern for the built-in words written without spaces, longest first, so that
        안녕히 가세요 (goodbye) wins over the 안녕 (hi) inside it."""
        kinds: dict[str, tuple[str, str]] = {}
        alternatives = []
        for code, vocab in vocabularies:
            for kind in ("greeting", "farewell"):
                for word in getattr(vocab, kind + "s"):
                    norm = normalize(word)
                    if word in vocab.word_only or not _CJK_RUN.fullmatch(norm.replace(" ", "")):
                        continue
                    kinds.setdefault(norm, (kind, code))
                    after = vocab.not_before.get(word)
                    alternatives.append((len(norm), re.escape(norm) + (f"(?![{after}])" if after else "")))
        if not alternatives:
            return None, kinds
        alternatives.sort(key=lambda item: -item[0])
        return re.compile("|".join(a for _, a in alternatives)), kinds

    def detect(self, message: str, message_type: str, username: str) -> str | None:
        """The trigger that fires for this message, or None when the bot should stay silent."""
        return self.match(message, message_type, username).trigger

    def match(self, message: str, message_type: str, username: str) -> TriggerMatch:
        """The trigger, the message's language and the reason (the dry run of §4 shows all three)."""
        if self._bot and normalize((username or "").strip().lstrip("@")) == self._bot:
            return TriggerMatch(None, reason="the bot's own message")
        kind = (message_type or "").strip().lower()
        is_event = kind in self._events
        if is_event and not self.config.respond_to_events:
            return TriggerMatch(None, reason=f"event {kind!r} while RESPOND_TO_EVENTS is off")
        text = normalize((message or "").strip())
        found = self._text_trigger(text) if text else TriggerMatch(None, reason="empty message")
        if found.trigger or not is_event:
            return found
        return TriggerMatch("event", self._language(text, _words(text), ()) if text else None, kind,
                            f"event type {kind!r}")

    def _text_trigger(self, text: str) -> TriggerMatch:
        command = None
        if text.startswith("!"):
            head = _COMMAND.match(text)
            if head:  # a chat command: only those named in a trigger list get through
                command = head.group(1)
                if command not in self._commands:
                    return TriggerMatch(None, reason=f"chat command !{command} (the router's)")
        if "." in text or "://" in text:  # every link has one of them (most chat has neither)
            text = _URL.sub(" ", text)  # words and "?" inside links never count
        tokens = _words(text)
        cjk = self._in_run is not None and not text.isascii() and _CJK_RUN.search(text) is not None
        if (command is None and not cjk and "-" not in text and "@" not in text
                and self._opening_words.isdisjoint(tokens) and not _STRETCHED.search(text)):
            if self._question and self._question.search(text):
                return TriggerMatch("question", self._language(text, tokens, ()), "?", "a question mark")
            return TriggerMatch(None, reason="no trigger word, mention of the bot or question mark")
        spaced = " %s " % " ".join(tokens).replace("-", " ")
        if self._mention and self._mention.find(tokens, spaced, lambda: True) is not None:
            return TriggerMatch("mention", self._language(text, tokens, self._hints(tokens, spaced)),
                                self._bot, "names the bot")
        other = next((n for n in _AT_NAME.findall(text) if n != self._bot), None)
        if other is not None:
            return TriggerMatch(None, self._language(text, tokens, self._hints(tokens, spaced)), f"@{other}",
                                f"talks to @{other}, not to the bot")

        def alone() -> bool:
            return all(t in self._known or _unstretch(t) in self._known for t in tokens)

        in_run = self._in_run.search(text) if cjk and self._in_run is not None else None
        for trigger, words in (("greeting", self._greetings), ("farewell", self._farewells)):
            if command is not None and command in words.commands:
                return TriggerMatch(trigger, self._language(text, tokens, ()), f"!{command}",
                                    f"the command !{command}")
            hit = words.find(tokens, spaced, alone)
            if hit is not None:
                return TriggerMatch(trigger, self._language(text, tokens, words.languages(hit)), hit,
                                    f"{trigger} word {hit!r}")
            if in_run is not None and self._in_run_kinds[in_run.group(0)][0] == trigger:
                word = in_run.group(0)
                code = self._in_run_kinds[word][1]
                return TriggerMatch(trigger, code, word, f"{trigger} word {word!r}")
        if self._question and self._question.search(text):
            return TriggerMatch("question", self._language(text, tokens, ()), "?", "a question mark")
        return TriggerMatch(None, self._language(text, tokens, ()),
                            reason="no trigger word, mention of the bot or question mark")

    def _hints(self, tokens: list[str], spaced: str) -> tuple[str, ...]:
        """The languages of a greeting or farewell word in the line, to tell its language when
        another trigger (a mention) fired or none did (talk between viewers)."""
        for words in (self._greetings, self._farewells):
            hit = words.find(tokens, spaced, lambda: True)
            if hit is not None:
                return words.languages(hit)
        return ()

    def _language(self, text: str, tokens: list[str], hints: tuple[str, ...]) -> str | None:
        """The message's language among TRIGGER_LANGUAGES: by script for Korean, Japanese, Chinese
        and Russian; for Latin script by its short words, the trigger word's language breaking ties."""
        allowed = self.languages
        if _HANGUL.search(text):
            return "ko" if "ko" in allowed else None
        if _KANA.search(text):
            return "ja" if "ja" in allowed else None
        if _HAN.search(text):
            return self._han_language(text, hints)
        if _CYRILLIC.search(text):
            return "ru" if "ru" in allowed else None
        hints = tuple(h for h in hints if h in self._markers)
        scores = {code: sum(1 for t in tokens if t in markers) for code, markers in self._markers.items()}
        for code in hints:
            scores[code] += 1
        best = max(scores.values(), default=0)
        if best == 0:
            return None
        leaders = [code for code in allowed if scores.get(code) == best]
        return next((h for h in hints if h in leaders), leaders[0])

    def _han_language(self, text: str, hints: tuple[str, ...]) -> str | None:
        """Chinese characters without kana: Japanese when a character or the trigger word says so."""
        allowed = self.languages
        chars = set(text)
        japanese = not chars.isdisjoint(JAPANESE_ONLY_HAN) or ("ja" in hints and "zh" not in hints)
        if japanese and chars.isdisjoint(SIMPLIFIED_ONLY_HAN) and "ja" in allowed:
            return "ja"
        return "zh" if "zh" in allowed else ("ja" if "ja" in allowed else None)


@functools.lru_cache(maxsize=256)
def matcher_for(config: TriggerConfig) -> TriggerMatcher:
    """The compiled matcher for `config`, shared by every community with the same triggers."""
    return TriggerMatcher(config)
