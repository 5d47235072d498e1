"""The PostgreSQL connection pool: bounded, every query under a timeout, connected in the background.

`Database.start()` returns at once. A task connects, retrying with backoff (0.2 s doubling to 10 s)
while PostgreSQL is unreachable — meanwhile /ready answers 503 and the interaction endpoint 503
with Retry-After — then applies the migrations under an advisory lock and publishes the pool.
`DB_TIMEOUT_S` bounds each connect, each pool acquire and each statement (`command_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import asyncpg

from config.settings import MODULE_NAME, ConfigError
from observability import metrics
from storage.errors import StoreUnavailable
from observability.logs import get_logger
from storage.migrate import migrate

log = get_logger(__name__)

# What a lost connection, a PostgreSQL error, a timeout or "not connected yet" look like.
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError,
    OSError, StoreUnavailable,
)


# Errors after which a connection must not be reused (timeouts included: the server may still be busy).
_BROKEN = (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError,
           asyncpg.PostgresConnectionError, OSError)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query.

    The default (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) costs a round trip and
    a transaction on every release — as much as the queue's own statements. Pooled connections never
    change session state: no SET, no LISTEN (the listener has its own connection), no cursors outside
    a transaction, and the migration's advisory lock is released in a `finally` (a failure there
    terminates the whole pool). asyncpg still rolls back a transaction left open."""


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a database error for logs and /ready."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Database:
    def __init__(self, dsn: str, *, min_size: int, max_size: int, timeout: float) -> None:
        if urlsplit(dsn).scheme not in ("postgres", "postgresql"):
            raise ConfigError("invalid configuration:\n  DATABASE_URL: must be a postgresql:// URL")
        self.dsn = dsn
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        self.pool: asyncpg.Pool | None = None
        self.schema = "public"
        self.last_error: str | None = "not connected yet"
        self.applied: list[str] = []
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        query = parse_qs(urlsplit(dsn).query)
        # An application_name in the DSN wins, so operators (and tests) can tell instances apart.
        self.server_settings = {} if "application_name" in query else {"application_name": MODULE_NAME}

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        # asyncpg logs a traceback per failed attempt to refill the pool during an outage; the
        # outage is logged once, concisely, by the queue's poll (interactions/queue/postgres.py).
        logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
        self._task = asyncio.create_task(self._connect_loop(), name="db-connect")

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
            return True
        except TimeoutError:
            return False

    async def _connect_loop(self) -> None:
        delay, attempt = 0.2, 0
        while True:
            attempt += 1
            pool = None
            try:
                pool = await asyncpg.create_pool(
                    self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout,
                    command_timeout=self.timeout, init=_init_connection, reset=_keep_session,
                    server_settings=self.server_settings)
                async with pool.acquire(timeout=self.timeout) as conn:
                    self.applied = await migrate(conn, timeout=max(60.0, self.timeout))
                    self.schema = await conn.fetchval("SELECT current_schema()") or "public"
            except asyncio.CancelledError:
                if pool is not None:
                    pool.terminate()
                raise
            except Exception as exc:  # unreachable, auth, missing schema, failed migration: retry
                if pool is not None:
                    pool.terminate()
                self.mark_down(exc, "connect")
                log.error("cannot connect to PostgreSQL (DATABASE_URL), retrying", action="db_connect",
                          result="retry", attempt=attempt, retry_in_s=delay, error=describe(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.pool = pool
            self.mark_up()
            self._connected.set()
            log.info("connected to PostgreSQL", action="db_connect", result="connected", schema=self.schema,
                     migrations_applied=self.applied, pool_min=self.min_size, pool_max=self.max_size)
            return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        pool, self.pool = self.pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except (TimeoutError, *DB_ERRORS):
                pool.terminate()

    # --- use ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """`async with db.acquire() as conn:` — raises StoreUnavailable before the first connect.

        A connection that failed at the protocol level is closed rather than handed back: after a
        server-side termination asyncpg may otherwise keep a poisoned connection in the pool
        (MagicStack/asyncpg#1069, "cannot switch to state …")."""
        if self.pool is None:
            raise StoreUnavailable("Durable store not connected yet, retry later")
        async with self.pool.acquire(timeout=self.timeout) as conn:
            try:
                yield conn
            except _BROKEN:
                with contextlib.suppress(asyncpg.InterfaceError):  # already closed and given back
                    conn.terminate()
                raise

    async def connect(self) -> asyncpg.Connection:
        """A dedicated connection outside the pool (for LISTEN)."""
        return await asyncpg.connect(self.dsn, timeout=self.timeout, command_timeout=self.timeout,
                                     server_settings=self.server_settings)

    async def probe(self, timeout: float = 2.0) -> bool:
        """One cheap round trip; True when PostgreSQL answered."""
        try:
            async with asyncio.timeout(min(timeout, self.timeout)):
                async with self.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except (TimeoutError, *DB_ERRORS) as exc:
            self.mark_down(exc, "probe")
            return False
        self.mark_up()
        return True

    # --- health bookkeeping ------------------------------------------------------------------
    def mark_down(self, exc: BaseException, operation: str) -> None:
        self.last_error = describe(exc)
        metrics.store_errors_total.labels(operation=operation).inc()
        metrics.store_up.set(0)

    def mark_up(self) -> None:
        self.last_error = None
        metrics.store_up.set(1)
