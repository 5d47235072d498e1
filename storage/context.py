"""Conversation context: the last N exchanges per (platform, entity, user), behind `ContextStore`;
in memory here, in PostgreSQL in storage/pg_context.py.

Each conversation keeps at most `history_limit` exchanges, each expires after `ttl_s`, and at most
`max_conversations` conversations are kept (least recently used dropped first), so memory is
bounded whatever the traffic.

Layout (memory grows with the number of conversations, so each one is kept small): one plain dict
in least-recently-used order (a conversation moves to the end when read or written), keyed by the
three key parts joined with NUL — which no text field may contain (web/models.py) — and holding one
flat tuple `(user_message, reply, at, user_message, reply, at, …)`, oldest exchange first.
`Exchange` objects are built only when the history is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from observability import metrics

ConversationKey = tuple[str, str, str]  # (platform, entity_id, user_id)
_SEP = "\x00"
_FIELDS = 3  # user_message, reply, at


@dataclass(frozen=True, slots=True)
class Exchange:
    user_message: str
    reply: str
    at: float


class ContextStore(Protocol):
    async def history(self, key: ConversationKey) -> list[Exchange]:
        """The live exchanges of one conversation, oldest first."""
        ...

    async def append(self, key: ConversationKey, user_message: str, reply: str) -> None: ...

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Forget every conversation of one user; returns how many exchanges went."""
        ...


def _fold(key: ConversationKey) -> str | ConversationKey:
    """One string for the key; the tuple itself in the (API-impossible) case of a NUL in a part."""
    folded = _SEP.join(key)
    return folded if folded.count(_SEP) == 2 else key


def _parts(folded: str | ConversationKey) -> ConversationKey:
    if isinstance(folded, str):
        platform, entity_id, user_id = folded.split(_SEP)
        return platform, entity_id, user_id
    return folded


class MemoryContextStore:
    def __init__(self, history_limit: int, ttl_s: float, max_conversations: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.history_limit = history_limit
        self.ttl_s = ttl_s
        self.max_conversations = max_conversations
        self._clock = clock
        self._conversations: dict[str | ConversationKey, tuple[str | float, ...]] = {}

    def _live(self, exchanges: tuple[str | float, ...], horizon: float) -> tuple[str | float, ...]:
        """The exchanges newer than `horizon` (they are in time order: the expired ones lead)."""
        start = 0
        while start < len(exchanges) and exchanges[start + 2] < horizon:  # type: ignore[operator]
            start += _FIELDS
        return exchanges[start:] if start else exchanges

    async def history(self, key: ConversationKey) -> list[Exchange]:
        """The conversation's live exchanges, oldest first."""
        folded = _fold(key)
        exchanges = self._conversations.pop(folded, None)
        if exchanges is not None:
            exchanges = self._live(exchanges, self._clock() - self.ttl_s)
            if exchanges:
                self._conversations[folded] = exchanges  # most recently used: to the end
        if not exchanges:
            metrics.context_lookups_total.labels(result="miss").inc()
            return []
        metrics.context_lookups_total.labels(result="hit").inc()
        return [Exchange(*exchanges[i:i + _FIELDS]) for i in range(0, len(exchanges), _FIELDS)]  # type: ignore[arg-type]

    async def append(self, key: ConversationKey, user_message: str, reply: str) -> None:
        if self.history_limit <= 0:
            return
        now = self._clock()
        folded = _fold(key)
        conversations = self._conversations
        exchanges = conversations.pop(folded, None)
        if exchanges is None:
            exchanges = (user_message, reply, now)
            # Make room (least recently used first), and drop idle conversations whose last exchange
            # expired on the way: they would read as empty anyway.
            horizon = now - self.ttl_s
            while conversations:
                oldest = next(iter(conversations))
                if len(conversations) < self.max_conversations and conversations[oldest][-1] >= horizon:  # type: ignore[operator]
                    break
                del conversations[oldest]
        else:
            keep = (self.history_limit - 1) * _FIELDS
            exchanges = self._live(exchanges, now - self.ttl_s)
            exchanges = (exchanges[len(exchanges) - keep:] if len(exchanges) > keep else exchanges) \
                + (user_message, reply, now)
        conversations[folded] = exchanges

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Forget everything about one user on one platform; returns the exchanges removed."""
        doomed = [k for k in self._conversations if (p := _parts(k))[0] == platform and p[2] == user_id]
        removed = 0
        for key in doomed:
            removed += len(self._conversations.pop(key, ())) // _FIELDS
        return removed

    def __len__(self) -> int:
        return len(self._conversations)
