"""Decide whether a chat message or platform event deserves an answer (§4).

Runs on the hot path for every message, so all patterns and word sets are built once per
configuration (`TriggerMatcher.__init__`) and shared through the `matcher_for` cache.

Matching is on whole words and consecutive-word phrases, never substrings: the message is split
into `\\w`-words (so "this", "super", "they", "2007" never contain "hi", "sup", "hey", "o7").
A word may hold inner hyphens or apostrophes ("bye-law", "hi-fi", "y'all" are one word); a
hyphenated word still fires when it *is* a trigger once the hyphens are dropped ("good-bye") or
spaced ("see-ya"), or when every part is a trigger ("bye-bye", "hey-hey").
"""

from __future__ import annotations

import functools
import re

from config.community import TriggerConfig

TRIGGER_ORDER = ("mention", "greeting", "farewell", "question", "event")

_WORD = re.compile(r"\w+(?:['\-]\w+)*")
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)+/\S*", re.IGNORECASE)
_COMMAND = re.compile(r"!(\w+)")  # "!" followed by a word character, at the message start



def _normalize(text: str) -> str:
    return text.casefold().replace("\u2019", "'")


def _words(text: str) -> list[str]:
    return _WORD.findall(_normalize(text))


class _WordList:
    """One trigger list, precompiled: single words, multi-word phrases and `!commands`."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        words: set[str] = set()
        phrases: set[str] = set()
        commands: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if entry.startswith("!") and _COMMAND.fullmatch(entry):
                commands.add(_normalize(entry[1:]))
                continue
            tokens = _words(entry)
            if len(tokens) == 1:
                words.add(tokens[0])
            elif tokens:
                phrases.add(" ".join(tokens))
        self.words = frozenset(words)
        self.phrases = tuple(f" {p} " for p in sorted(phrases))
        self.commands = frozenset(commands)

    def matches(self, tokens: list[str], spaced: str) -> bool:
        """`tokens`: the message's words; `spaced`: the same words, hyphens as spaces, padded."""
        words = self.words
        for token in tokens:
            if token in words:
                return True
            if "-" in token:
                parts = token.split("-")
                if "".join(parts) in words or all(p in words for p in parts):
                    return True
        return any(p in spaced for p in self.phrases)


class TriggerMatcher:
    """`detect()` for one TriggerConfig; build it once (see `matcher_for`)."""

    def __init__(self, config: TriggerConfig) -> None:
        self.config = config
        self._bot = _normalize(config.bot_name.strip().lstrip("@"))
        bot_tokens = " ".join(_words(self._bot))
        self._mention = _WordList((bot_tokens, f"{bot_tokens}'s")) if bot_tokens else None
        self._greetings = _WordList(config.greetings)
        self._farewells = _WordList(config.farewells)
        marks = [m for m in (m.strip() for m in config.question_marks) if m]
        self._question = (
            re.compile(r"\w(?:%s)" % "|".join(re.escape(m) for m in marks)) if marks else None
        )
        self._commands = self._greetings.commands | self._farewells.commands
        self._events = frozenset(t.strip().lower() for t in config.event_types)
        # Most chat fires nothing: a message none of whose words is a trigger word or the first word
        # of a trigger phrase cannot match a list (hyphenated words aside), so it skips the lists.
        lists = [w for w in (self._mention, self._greetings, self._farewells) if w is not None]
        self._opening_words = frozenset().union(*(w.words for w in lists),
                                                (p.split()[0] for w in lists for p in w.phrases))

    def detect(self, message: str, message_type: str, username: str) -> str | None:
        """The trigger that fires for this message, or None when the bot should stay silent."""
        if self._bot and _normalize((username or "").strip().lstrip("@")) == self._bot:
            return None
        is_event = (message_type or "").strip().lower() in self._events
        if is_event and not self.config.respond_to_events:
            return None
        text = (message or "").strip()
        found = self._text_trigger(text) if text else None
        if found:
            return found
        return "event" if is_event else None

    def _text_trigger(self, text: str) -> str | None:
        command = None
        if text.startswith("!"):
            head = _COMMAND.match(text)
            if head:  # a chat command: only those named in a trigger list get through
                command = _normalize(head.group(1))
                if command not in self._commands:
                    return None
        if "." in text or "://" in text:  # every link has one of them (most chat has neither)
            text = _URL.sub(" ", text)  # words and "?" inside links never count
        tokens = _words(text)
        if command is None and "-" not in text and self._opening_words.isdisjoint(tokens):
            return "question" if self._question and self._question.search(text) else None
        spaced = " %s " % " ".join(tokens).replace("-", " ")
        if self._mention and self._mention.matches(tokens, spaced):
            return "mention"
        if command in self._greetings.commands or self._greetings.matches(tokens, spaced):
            return "greeting"
        if command in self._farewells.commands or self._farewells.matches(tokens, spaced):
            return "farewell"
        if self._question and self._question.search(text):
            return "question"
        return None


@functools.lru_cache(maxsize=256)
def matcher_for(config: TriggerConfig) -> TriggerMatcher:
    """The compiled matcher for `config`, shared by every community with the same triggers."""
    return TriggerMatcher(config)
