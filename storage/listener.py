"""LISTEN on one channel over a dedicated connection, re-established when it is lost.

Notifications only wake idle workers early; the queue's polling loop finds the work anyway, so a
lost or not yet re-established listener costs latency, never an interaction.
"""

from __future__ import annotations

from typing import Any, Callable

import asyncpg

from observability.logs import get_logger
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)


class Listener:
    def __init__(self, db: Database, channel: str, on_notify: Callable[[], None]) -> None:
        self.db = db
        self.channel = channel
        self.on_notify = on_notify
        self._conn: asyncpg.Connection | None = None
        self._was_lost = False

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> bool:
        """Listen (again) if not listening; True when listening. Never raises for database errors."""
        if self.alive:
            return True
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
            self._was_lost = True
        try:
            conn = await self.db.connect()
            await conn.add_listener(self.channel, self._callback)
        except DB_ERRORS as exc:
            log.warning("cannot LISTEN for queued interactions; polling meanwhile", action="queue_listen",
                        result="retry", error=describe(exc))
            return False
        self._conn = conn
        if self._was_lost:
            log.info("listening for queued interactions again", action="queue_listen", result="restored")
        self.on_notify()  # something may have been queued while nobody listened
        return True

    def _callback(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.on_notify()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except DB_ERRORS:
                conn.terminate()
