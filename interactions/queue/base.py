"""What every interaction queue offers the HTTP layer and the workers: `InteractionQueue`.

Two implement it: `MemoryQueue` (interactions/queue/memory.py, one process) and `PgQueue`
(interactions/queue/postgres.py, durable and shared by every replica).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from interactions.model import Interaction


class QueueFull(Exception):
    """The queue holds MAX_QUEUE interactions already."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    interaction_id: str
    duplicate: bool


class InteractionQueue(Protocol):
    durable: bool  # True: unfinished work survives this process (another replica takes it)

    async def enqueue(self, interaction: Interaction) -> Enqueued:
        """Accept one interaction, or name the first one with the same dedupe key. Raises QueueFull,
        or storage.errors.StoreUnavailable when a durable queue cannot be reached."""
        ...

    async def claim(self) -> Interaction:
        """Wait for the next interaction this process may work on."""
        ...

    async def finish(self, interaction: Interaction, outcome: str) -> None: ...

    def depth(self) -> int: ...

    async def reachable(self) -> bool: ...

    def stop_claiming(self) -> None:
        """Draining: a durable queue leaves what is queued to the other replicas."""
        ...

    def take_all(self) -> list[Interaction]:
        """At shutdown, what this process still holds and will never process."""
        ...

    async def erase_user(self, platform: str, user_id: str) -> int: ...

    async def aclose(self) -> None: ...
