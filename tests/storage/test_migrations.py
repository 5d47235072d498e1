"""Migrations: numbered files applied once, in order, even by instances starting together."""

from __future__ import annotations

import asyncio

import asyncpg

from storage.migrate import available, migrate


async def test_instances_starting_together_apply_each_migration_exactly_once(pg):
    conns = [await asyncpg.connect(pg.dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        names = [name for _, name, _ in available()]
        assert sorted(n for applied in results for n in applied) == names
        recorded = await conns[0].fetch("SELECT version, name FROM ai_schema_migrations ORDER BY version")
        assert [r["name"] for r in recorded] == names
        assert [r["version"] for r in recorded] == list(range(1, len(names) + 1))
        assert await migrate(conns[1]) == []
        tables = {r[0] for r in await conns[0].fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", pg.name)}
        assert {"ai_interaction_queue", "ai_interaction_dedupe", "ai_conversation_context",
                "ai_module_config", "ai_usage", "ai_schema_migrations"} <= tables
    finally:
        for conn in conns:
            await conn.close()


def test_migration_files_are_numbered_without_gaps():
    versions = [v for v, _, _ in available()]
    assert versions == list(range(1, len(versions) + 1))
