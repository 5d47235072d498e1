"""Context, per-community configuration and usage in PostgreSQL, shared between instances."""

from __future__ import annotations

import pytest

from storage.usage import totals
from storage.db import Database
from interactions.queue.maintenance import Maintenance
from storage.pg_config import PgConfigSource
from storage.pg_context import PgContextStore
from storage.pg_usage import PgUsage
from tests.support import make_settings
from tests.waiting import async_wait_until

KEY = ("twitch", "twitch:channel:1", "user-1")


@pytest.fixture
async def dbs(pg):
    """Two independent pools on one schema: two instances."""
    made = [Database(pg.dsn, min_size=1, max_size=4, timeout=5) for _ in range(2)]
    for db in made:
        await db.start()
        assert await db.wait_connected(15)
    yield made
    for db in made:
        await db.close()


async def test_context_is_shared_trimmed_oldest_first_and_erasable(pg, dbs):
    one, two = PgContextStore(dbs[0], 2, 1800), PgContextStore(dbs[1], 2, 1800)
    for i in range(3):
        await (one if i % 2 else two).append(KEY, f"user {i}", f"reply {i}")
    await one.append(("twitch", "twitch:channel:2", "user-1"), "elsewhere", "there")
    await one.append(("twitch", "twitch:channel:1", "user-2"), "someone else", "them")
    history = await two.history(KEY)
    assert [(e.user_message, e.reply) for e in history] == [("user 1", "reply 1"), ("user 2", "reply 2")]
    assert pg.value("SELECT count(*) FROM ai_conversation_context WHERE user_id = 'user-1'") == 3
    assert await one.erase_user("twitch", "user-1") == 3
    assert await two.history(KEY) == []
    assert pg.value("SELECT count(*) FROM ai_conversation_context") == 1


async def test_context_older_than_the_ttl_is_not_used_and_is_pruned(pg, dbs):
    store = PgContextStore(dbs[0], 5, 60)
    await store.append(KEY, "old", "old reply")
    await store.append(KEY, "new", "new reply")
    pg.query("UPDATE ai_conversation_context SET created_at = now() - interval '2 minutes' WHERE user_message = 'old'")
    assert [e.user_message for e in await store.history(KEY)] == ["new"]
    removed = await Maintenance(dbs[0], PgUsage(dbs[0]), retention_s=0, context_ttl_s=60).run_once()
    assert removed["context"] == 1
    assert pg.value("SELECT count(*) FROM ai_conversation_context") == 1


async def test_finished_rows_and_expired_dedupe_keys_are_pruned(pg, dbs):
    pg.query("""INSERT INTO ai_interaction_queue (id, status, request_id, finished_at, outcome) VALUES
                (gen_random_uuid(), 'done', 'r', now() - interval '2 hours', 'replied'),
                (gen_random_uuid(), 'done', 'r', now(), 'replied'),
                (gen_random_uuid(), 'queued', 'r', NULL, NULL)""")
    pg.query("""INSERT INTO ai_interaction_dedupe VALUES ('m:old', gen_random_uuid(), now() - interval '1 second'),
                ('m:live', gen_random_uuid(), now() + interval '1 hour')""")
    removed = await Maintenance(dbs[0], PgUsage(dbs[0]), retention_s=3600, context_ttl_s=60).run_once()
    assert (removed["finished"], removed["dedupe_keys"]) == (1, 1)
    assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 2
    assert pg.value("SELECT key FROM ai_interaction_dedupe") == "m:live"


async def test_config_changes_reach_other_instances_within_the_ttl(pg, dbs):
    settings = make_settings()
    writer = PgConfigSource(dbs[0], settings, ttl_s=10)
    reader = PgConfigSource(dbs[1], settings, ttl_s=0.3)
    assert (await reader.effective(7)).model is None  # cached now
    changed = await writer.update(7, {"model": "m-7", "temperature": 0.2,
                                      "triggers": {"greetings": ["ahoy"], "event_types": ["Raid"]}})
    assert (changed.model, changed.temperature, changed.triggers.greetings) == ("m-7", 0.2, ("ahoy",))
    assert changed.triggers.event_types == frozenset({"raid"})
    assert changed.triggers.farewells == settings_farewells(settings)  # not named: inherited
    await async_wait_until(lambda: _model(reader, 7), timeout=5, message="the change on the other instance")
    assert (await reader.effective(8)).model is None
    await writer.update(None, {"system_prompt": "Global persona", "model": "global-model"})
    both = await writer.effective(7), await writer.effective(8)
    assert [c.system_prompt for c in both] == ["Global persona", "Global persona"]
    assert [c.model for c in both] == ["m-7", "global-model"]
    reset = await writer.update(7, {"model": None, "triggers": {"greetings": None}})
    assert reset.model == "global-model" and reset.triggers.greetings == tuple(settings.greeting_triggers)
    overrides, updated_at = await writer.overrides(7)
    assert overrides == {"temperature": 0.2, "triggers": {"event_types": ["Raid"]}} and updated_at


def settings_farewells(settings) -> tuple[str, ...]:
    return tuple(settings.farewell_triggers)


async def _model(source: PgConfigSource, community: int) -> bool:
    return (await source.effective(community)).model == "m-7"


async def test_config_falls_back_to_the_last_known_when_the_store_is_gone(dbs):
    source = PgConfigSource(dbs[0], make_settings(), ttl_s=0)
    await source.update(3, {"model": "kept"})
    assert (await source.effective(3)).model == "kept"
    await dbs[0].close()
    assert (await source.effective(3)).model == "kept"
    assert (await source.effective(4)).model is None


async def test_usage_sums_per_community_provider_model_and_day(dbs):
    one, two = PgUsage(dbs[0]), PgUsage(dbs[1])
    await one.record(5, "ollama", "llama3.2", 10, 3)
    await two.record(5, "ollama", "llama3.2", 20, 4)
    await two.record(5, "waddleai", "gpt", 1, 1)
    await one.record(None, "ollama", "llama3.2", 7, 7)
    rows = await one.report(5)
    assert [(r.provider, r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("ollama", "llama3.2", 2, 30, 7), ("waddleai", "gpt", 1, 1, 1)]
    assert totals(await two.report()) == {"requests": 4, "prompt_tokens": 38, "completion_tokens": 15,
                                          "total_tokens": 53}
    assert await one.report(0, since=rows[0].day.replace(year=rows[0].day.year + 1)) == []


async def test_usage_is_kept_while_the_store_is_unreachable_and_written_later(pg, dbs):
    usage = PgUsage(dbs[0])
    pool, dbs[0].pool = dbs[0].pool, None  # "not connected": every call fails like an outage
    await usage.record(1, "ollama", "m", 5, 5)
    await usage.record(1, "ollama", "m", 5, 5)
    assert pg.value("SELECT count(*) FROM ai_usage") == 0
    dbs[0].pool = pool
    await usage.flush()
    assert tuple(pg.query("SELECT requests, prompt_tokens, completion_tokens FROM ai_usage")[0]) == (2, 10, 10)
