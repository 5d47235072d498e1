"""PostgreSQL fixtures: a fresh schema per test in the machine's database, dropped afterwards.

The DSN handed to the app carries `search_path` (the test's schema) and `application_name` (the
same name) as server settings, so the test can find and terminate exactly its own connections.
Set AIM_TEST_PG_DSN to use another server; without a reachable PostgreSQL these tests are skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Iterator

import asyncpg
import pytest

BASE_DSN = os.environ.get("AIM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def run_sync(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion on a fresh loop in another thread (safe inside async tests)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result(60)


async def _admin(fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(BASE_DSN, timeout=5)
    try:
        return await fn(conn)
    finally:
        await conn.close()


class PgSchema:
    def __init__(self, name: str) -> None:
        self.name = name
        sep = "&" if "?" in BASE_DSN else "?"
        self.dsn = f"{BASE_DSN}{sep}search_path={name}&application_name={name}"

    def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def go(conn: asyncpg.Connection) -> Any:
            await conn.execute(f"SET search_path TO {self.name}")
            return await conn.fetch(sql, *args)
        return run_sync(lambda: _admin(go))

    def value(self, sql: str, *args: Any) -> Any:
        rows = self.query(sql, *args)
        return rows[0][0] if rows else None

    def terminate(self) -> int:
        """pg_terminate_backend every connection of this test's apps; returns how many."""
        return run_sync(lambda: _admin(lambda c: c.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            self.name)))


@pytest.fixture(scope="session")
def pg_available() -> None:
    try:
        run_sync(lambda: _admin(lambda c: c.fetchval("SELECT 1")))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):  # .ci/run starts PostgreSQL: in CI a missing server is a failure
            pytest.fail(f"PostgreSQL not reachable at {BASE_DSN}: {exc!r}")
        pytest.skip(f"PostgreSQL not reachable at {BASE_DSN}: {exc!r}")


@pytest.fixture
def pg(pg_available: None) -> Iterator[PgSchema]:
    schema = PgSchema(f"aim_t_{uuid.uuid4().hex[:12]}")
    run_sync(lambda: _admin(lambda c: c.execute(f"CREATE SCHEMA {schema.name}")))
    try:
        yield schema
    finally:
        schema.terminate()
        run_sync(lambda: _admin(lambda c: c.execute(f"DROP SCHEMA {schema.name} CASCADE")))


def pg_settings(pg: PgSchema, ollama: Any = None, router: Any = None, **overrides: Any) -> Any:
    """Test settings for an app on this schema: fast polling, short timeouts."""
    from tests.support import make_settings

    values = {"database_url": pg.dsn, "queue_poll_s": 0.1, "db_timeout_s": 3, **overrides}
    return make_settings(ollama=ollama, router=router, **values)


def wait_ready(app: Any, timeout: float = 15) -> None:
    from tests.waiting import wait_until

    wait_until(lambda: app.http.get("/ready").status_code == 200, timeout=timeout, message="/ready 200")
