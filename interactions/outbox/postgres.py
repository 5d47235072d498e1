"""The durable outbox store (a `ReplyStore`, interactions/outbox/store.py): replies in their rows.

- `hand_over`: before the worker moves on, its row turns 'sending' with the reply (one statement,
  committed). The lease the worker held stays held, renewed with the queue's other leases; the
  outcome is written by the queue's `finish` like any other (the row `done`, reply and content
  dropped). PostgreSQL unreachable at that moment: the reply is delivered from memory all the same,
  the row stays 'working' under the kept lease (if this instance dies before, another one processes
  the interaction again: the same `Idempotency-Key`).
- `park` (the outbox is full): the row turns 'sending' held by nobody; whichever instance's outbox
  has room takes it.
- `take_over`: rows 'sending' whose lease ran out (their instance died, or parked), for this
  instance's outbox, taken `FOR UPDATE SKIP LOCKED` under a new lease; each goes to one instance.
- `release` (shutdown): this instance's undelivered replies are left to the others at once.
"""

from __future__ import annotations

import sys
import time

from pydantic import ValidationError

from interactions.model import Interaction, InteractionRequest
from interactions.outbox import outbox_sql
from interactions.outbox.pending import PendingReply
from interactions.queue.leases import Leases
from observability import metrics
from observability.logs import get_logger
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)
_RESTORE = {"max_message_chars": sys.maxsize}  # validated at the ACK already


class PgReplies:
    durable = True

    def __init__(self, db: Database, *, owner: str, leases: Leases, lease_s: float) -> None:
        self.db, self.owner, self.leases, self.lease_s = db, owner, leases, lease_s

    async def hand_over(self, reply: PendingReply) -> bool:
        try:
            async with self.db.acquire() as conn:
                kept = await outbox_sql.hand_over(conn, reply.id, self.owner, reply.to_json(), self.lease_s)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "outbox")
            log.warning("reply not stored (store unavailable): delivered from memory, the lease kept",
                        action="outbox_put", interaction_id=reply.id, error=describe(exc))
            return True
        if not kept:
            self.leases.done(reply.id)
            log.warning("reply not sent: its interaction is no longer this instance's (lease lost)",
                        action="outbox_put", interaction_id=reply.id, result="lost")
        return kept

    async def park(self, reply: PendingReply) -> bool:
        try:
            async with self.db.acquire() as conn:
                await outbox_sql.park(conn, reply.id, self.owner, reply.to_json())
        except DB_ERRORS as exc:  # the row stays 'working': processed again once the lease runs out
            self.db.mark_down(exc, "outbox")
            log.warning("reply not stored (store unavailable): its interaction is processed again after "
                        "the lease", action="outbox_put", interaction_id=reply.id, error=describe(exc))
        self.leases.done(reply.id)
        return True

    def holds(self, interaction_id: str) -> bool:
        return interaction_id in self.leases.held

    async def take_over(self, limit: int) -> list[PendingReply]:
        if self.db.pool is None:
            return []
        try:
            async with self.db.acquire() as conn:
                rows = await outbox_sql.take_over(conn, self.owner, self.lease_s, limit)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "outbox")
            return []
        taken = []
        for row in rows:
            self.leases.add(row["id"])
            try:
                request = InteractionRequest.model_validate_json(row["payload"], context=_RESTORE)
                interaction = Interaction(request, request_id=row["request_id"], id=row["id"],
                                          accepted_at=time.time() - row["age_s"])
                taken.append(PendingReply.from_json(interaction, row["reply"]))
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                log.error("unreadable stored reply", action="outbox_takeover", interaction_id=row["id"],
                          result="failed", error=str(exc)[:200])
                self.leases.defer(row["id"], "failed")
                continue
            metrics.outbox_takeovers_total.inc()
            log.info("undelivered reply taken over", action="outbox_takeover", interaction_id=row["id"],
                     previous_owner=row["previous"] or "none (parked)", result="takeover")
        return taken

    async def release(self, replies: list[PendingReply]) -> int:
        for reply in replies:
            self.leases.done(reply.id)
        if self.db.pool is None:
            return 0
        try:
            async with self.db.acquire() as conn:
                return await outbox_sql.release(conn, self.owner)
        except DB_ERRORS as exc:
            log.warning("could not release undelivered replies; another instance takes them after the lease",
                        action="shutdown", error=describe(exc), held=len(replies))
            return 0
