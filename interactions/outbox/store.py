"""Where the outbox keeps undelivered replies besides its own memory: `ReplyStore`.

`MemoryReplies` (no DATABASE_URL) keeps nothing: a reply lives only in the outbox. `PgReplies`
(interactions/outbox/postgres.py) keeps it in its interaction's row, so that another instance
delivers it when this one dies.
"""

from __future__ import annotations

from typing import Protocol

from interactions.outbox.pending import PendingReply


class ReplyStore(Protocol):
    durable: bool  # True: an undelivered reply survives this process (another instance takes it)

    async def hand_over(self, reply: PendingReply) -> bool:
        """Keep `reply` for this instance's senders before its worker moves on. False: the
        interaction is no longer this instance's (its lease was lost): do not deliver it."""
        ...

    async def park(self, reply: PendingReply) -> bool:
        """The outbox is full: True when the store keeps `reply` for any instance with room."""
        ...

    def holds(self, interaction_id: str) -> bool:
        """Before each attempt: the reply is still this instance's to deliver."""
        ...

    async def take_over(self, limit: int) -> list[PendingReply]:
        """Up to `limit` undelivered replies no live instance holds (a dead one's, or parked)."""
        ...

    async def release(self, replies: list[PendingReply]) -> int:
        """At shutdown: leave this instance's undelivered replies to the others; returns how many."""
        ...


class MemoryReplies:
    durable = False

    async def hand_over(self, reply: PendingReply) -> bool:
        return True

    async def park(self, reply: PendingReply) -> bool:
        return False

    def holds(self, interaction_id: str) -> bool:
        return True

    async def take_over(self, limit: int) -> list[PendingReply]:
        return []

    async def release(self, replies: list[PendingReply]) -> int:
        return 0
