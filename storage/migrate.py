"""Numbered SQL migrations (storage/migrations/NNNN_name.sql), applied once, in order, at start-up.

Instances starting together serialize on a session advisory lock (scoped to the current schema),
so exactly one applies each migration; `ai_schema_migrations` records what is applied, each file in
its own transaction together with its record.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg

from observability.logs import get_logger

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK = "SELECT pg_advisory_lock(hashtext(current_schema() || ':ai_interaction_module:migrations'))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext(current_schema() || ':ai_interaction_module:migrations'))"


def available() -> list[tuple[int, str, str]]:
    """(version, file name, sql) for every migration file, in version order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"badly named migration {path.name}: expected NNNN_name.sql")
        found.append((int(match.group(1)), path.name, path.read_text()))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a number")
    return found


async def migrate(conn: asyncpg.Connection, timeout: float = 60.0) -> list[str]:
    """Apply what is missing; returns the names applied now (empty when up to date)."""
    if await conn.fetchval("SELECT current_schema()") is None:
        raise RuntimeError("no schema to create tables in: check search_path in DATABASE_URL")
    await conn.execute(_LOCK, timeout=timeout)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS ai_schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())""", timeout=timeout)
        done = {r["version"]: r for r in await conn.fetch(
            "SELECT version, name, checksum FROM ai_schema_migrations", timeout=timeout)}
        applied = []
        for version, name, sql in available():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version]["checksum"] != checksum:
                    log.warning("applied migration was edited afterwards", action="db_migrate",
                                migration=name, result="checksum_mismatch")
                continue
            async with conn.transaction():
                await conn.execute(sql, timeout=timeout)
                await conn.execute(
                    "INSERT INTO ai_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version, name, checksum, timeout=timeout)
            applied.append(name)
            log.info("migration applied", action="db_migrate", migration=name, result="applied")
        return applied
    finally:
        await conn.execute(_UNLOCK, timeout=timeout)
