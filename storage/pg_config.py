"""Per-community configuration in PostgreSQL (table ai_module_config), read through a TTL cache.

Each instance caches a community's resolved configuration for CONFIG_CACHE_TTL_S, so a PUT on
any instance takes effect everywhere within that time (at once on the instance that took it).
When PostgreSQL cannot be read, the last configuration seen for the community is used (else the
global one) and a warning logged: the interaction still gets an answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from cachetools import LRUCache, TTLCache

from config.settings import Settings
from config.community import COLUMNS, EffectiveConfig, apply_overrides, global_config, merge_overrides
from storage.errors import StoreUnavailable
from observability.logs import get_logger
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)
_SELECT = f"SELECT community_id, {', '.join(COLUMNS)}, triggers, updated_at FROM ai_module_config"


def _record(row: asyncpg.Record | None) -> dict[str, Any]:
    if row is None:
        return {}
    record = {k: row[k] for k in COLUMNS if row[k] is not None}
    if row["triggers"]:
        record["triggers"] = row["triggers"]
    return record


async def load(conn: asyncpg.Connection, community_ids: list[int]) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch(_SELECT + " WHERE community_id = ANY($1::int[])", community_ids)
    return {r["community_id"]: r for r in rows}


async def save(conn: asyncpg.Connection, community_id: int, changes: dict[str, Any]) -> asyncpg.Record:
    """Merge `changes` into the community's row under a row lock; returns the new row."""
    async with conn.transaction():
        await conn.execute("INSERT INTO ai_module_config (community_id) VALUES ($1) ON CONFLICT DO NOTHING",
                           community_id)
        current = await conn.fetchrow(_SELECT + " WHERE community_id = $1 FOR UPDATE", community_id)
        merged = merge_overrides(_record(current), changes)
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(COLUMNS, start=2))
        return await conn.fetchrow(
            f"""UPDATE ai_module_config SET {assignments}, triggers = ${len(COLUMNS) + 2},
                    updated_at = now()
                WHERE community_id = $1
                RETURNING community_id, {', '.join(COLUMNS)}, triggers, updated_at""",
            community_id, *(merged.get(name) for name in COLUMNS), merged.get("triggers") or {})


class PgConfigSource:
    persisted = True

    def __init__(self, db: Database, settings: Settings, ttl_s: float, max_communities: int = 10_000) -> None:
        self.db = db
        self.defaults = global_config(settings)
        self._cache: TTLCache[int, EffectiveConfig] | None = (
            TTLCache(max_communities, ttl_s) if ttl_s > 0 else None)
        self._last: LRUCache[int, EffectiveConfig] = LRUCache(max_communities)

    async def effective(self, community_id: int | None) -> EffectiveConfig:
        key = community_id or 0
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            return hit
        try:
            async with self.db.acquire() as conn:
                rows = await load(conn, [0, key])
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "config_read")
            fallback = self._last.get(key) or self._last.get(0) or self.defaults
            log.warning("community configuration unavailable, using the last known", action="config_read",
                        community=community_id, result="stale", error=describe(exc))
            return fallback
        config = apply_overrides(self.defaults, _record(rows.get(0)))
        if key:
            config = apply_overrides(config, _record(rows.get(key)))
        if self._cache is not None:
            self._cache[key] = config
        self._last[key] = config
        return config

    async def overrides(self, community_id: int | None) -> tuple[dict[str, Any], datetime | None]:
        """The community's own override record (uncached) and when it last changed."""
        try:
            async with self.db.acquire() as conn:
                row = (await load(conn, [community_id or 0])).get(community_id or 0)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "config_read")
            raise StoreUnavailable() from None
        return _record(row), (row["updated_at"] if row is not None else None)

    async def update(self, community_id: int | None, changes: dict[str, Any]) -> EffectiveConfig:
        key = community_id or 0
        try:
            async with self.db.acquire() as conn:
                await save(conn, key, changes)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "config_write")
            raise StoreUnavailable() from None
        if self._cache is not None:
            if key:
                self._cache.pop(key, None)
            else:
                self._cache.clear()  # the global overrides are part of every community's config
        return await self.effective(community_id)
