"""Conversation context in memory: the last N exchanges per (platform, entity, user).

Each conversation keeps at most `history_limit` exchanges, each expires after `ttl_s`, and at most
`max_conversations` conversations are kept (least recently used dropped first), so memory is
bounded whatever the traffic.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from cachetools import LRUCache

from services import metrics

ConversationKey = tuple[str, str, str]  # (platform, entity_id, user_id)


@dataclass(frozen=True, slots=True)
class Exchange:
    user_message: str
    reply: str
    at: float


class MemoryContextStore:
    def __init__(self, history_limit: int, ttl_s: float, max_conversations: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.history_limit = history_limit
        self.ttl_s = ttl_s
        self._clock = clock
        self._conversations: LRUCache[ConversationKey, deque[Exchange]] = LRUCache(max_conversations)

    async def history(self, key: ConversationKey) -> list[Exchange]:
        """The conversation's live exchanges, oldest first."""
        exchanges = self._conversations.get(key)
        if exchanges:
            horizon = self._clock() - self.ttl_s
            while exchanges and exchanges[0].at < horizon:
                exchanges.popleft()
        if not exchanges:
            metrics.context_lookups_total.labels(result="miss").inc()
            return []
        metrics.context_lookups_total.labels(result="hit").inc()
        return list(exchanges)

    async def append(self, key: ConversationKey, user_message: str, reply: str) -> None:
        if self.history_limit <= 0:
            return
        exchanges = self._conversations.get(key)
        if exchanges is None:
            exchanges = deque(maxlen=self.history_limit)
            self._conversations[key] = exchanges
        exchanges.append(Exchange(user_message, reply, self._clock()))

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Forget everything about one user on one platform; returns the exchanges removed."""
        doomed = [k for k in list(self._conversations.keys()) if k[0] == platform and k[2] == user_id]
        removed = 0
        for key in doomed:
            removed += len(self._conversations.pop(key, ()))
        return removed

    def __len__(self) -> int:
        return len(self._conversations)
