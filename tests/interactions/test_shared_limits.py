"""Reply limits shared by replicas (§3.2, §12): in Redis (one Lua script) and in PostgreSQL (one
function call), each check-and-reserve atomic, so replicas racing for one user's cooldown reserve
it once and N replicas never allow N times a channel's replies."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import pytest

from interactions.rate_limits import ReplyRateLimiter
from interactions.shared_limits import PgReplyLimits, RedisReplyLimits
from observability import metrics
from storage.db import Database
from tests.shared_state import pg_pools, redis_links
from tests.storage.conftest import pg, pg_available  # noqa: F401 - fixtures
from tests.waiting import async_wait_until

BACKENDS = ["redis", "postgresql"]


@contextlib.asynccontextmanager
async def replicas(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[list]:
    """Two limiters on one shared store, each with the in-process limiter as its fallback."""
    if backend == "redis":
        space = request.getfixturevalue("redis_space")
        async with redis_links(space.url, space.prefix) as links:
            yield [RedisReplyLimits(link, ReplyRateLimiter(10, 20)) for link in links]
    else:
        schema = request.getfixturevalue("pg")
        async with pg_pools(schema.dsn) as dbs:
            yield [PgReplyLimits(db, ReplyRateLimiter(10, 20)) for db in dbs]


def refused(scope: str) -> float:
    return metrics.REGISTRY.get_sample_value("ai_rate_limited_total", {"scope": scope})


def fallbacks(use: str) -> float:
    return metrics.REGISTRY.get_sample_value("ai_redis_fallbacks_total", {"use": use})


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_replicas_racing_for_one_users_cooldown_reserve_it_once(backend, request):
    before = refused("user")
    async with replicas(backend, request) as (a, b):
        answers = await asyncio.gather(*(
            (a if i % 2 else b).reserve("twitch", "twitch:channel:1", "viewer", 60, 1000) for i in range(40)))
    assert answers.count(None) == 1
    assert answers.count("user") == 39
    assert refused("user") - before == 39


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_channels_replies_per_minute_hold_across_replicas(backend, request):
    async with replicas(backend, request) as (a, b):
        answers = await asyncio.gather(*(
            (a if i % 2 else b).reserve("twitch", "busy", f"viewer-{i}", 0, 5) for i in range(30)))
        assert answers.count(None) == 5
        assert answers.count("channel") == 25
        assert await a.reserve("twitch", "quiet", "viewer-0", 0, 5) is None  # another channel: its own minute


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refusal_reserves_nothing_and_the_cooldown_ends(backend, request):
    async with replicas(backend, request) as (a, b):
        assert await a.reserve("kick", "c", "first", 60, 1) is None
        assert await b.reserve("kick", "c", "second", 60, 1) == "channel"
        # the refused viewer got no cooldown: with room in the channel, they are answered
        assert await b.reserve("kick", "c", "second", 60, 2) is None
        assert await a.reserve("kick", "c", "second", 60, 3) == "user"
        assert await a.reserve("kick", "c", "brief", 0.2, 100) is None
        assert await b.reserve("kick", "c", "brief", 0.2, 100) == "user"
        await async_wait_until(lambda: _allowed(b.reserve("kick", "c", "brief", 0.2, 100)), timeout=10,
                               message="the 0.2 s cooldown to end")


async def _allowed(answer) -> bool:
    return await answer is None


async def test_redis_keys_are_digests_not_ids(redis_space):
    async with redis_links(redis_space.url, redis_space.prefix, n=1) as (link,):
        assert await RedisReplyLimits(link, ReplyRateLimiter(10, 20)).reserve(
            "twitch", "twitch:channel:42", "viewer-secret", 30, 20) is None
    keys = redis_space.keys("rl")
    assert len(keys) == 2 and not any("viewer" in k or "channel:42" in k for k in keys)


async def test_pg_rows_expire_and_are_pruned(request):
    from interactions.queue.maintenance import Maintenance
    from storage.pg_usage import PgUsage

    schema = request.getfixturevalue("pg")
    async with pg_pools(schema.dsn, n=1) as (db,):
        limits = PgReplyLimits(db, ReplyRateLimiter(10, 20))
        assert await limits.reserve("twitch", "c", "u", 30, 20) is None
        keys = sorted(r[0] for r in schema.query("SELECT key FROM ai_rate_limits"))
        assert [k[:2] for k in keys] == ["c:", "u:"] and all(len(k) == 34 for k in keys)  # digests, no ids
        schema.query("UPDATE ai_rate_limits SET expires_at = now() - interval '1 second'")
        removed = await Maintenance(db, PgUsage(db), retention_s=3600, context_ttl_s=60).run_once()
        assert removed["rate_limits"] == 2


async def test_redis_unavailable_falls_back_to_the_next_limiter_and_counts_it(own_redis):
    fallback = ReplyRateLimiter(60, 20)
    before = fallbacks("rate_limit")
    async with redis_links(own_redis.url, "t:", n=1, timeout_s=0.5) as (link,):
        limits = RedisReplyLimits(link, fallback)
        assert await limits.reserve("twitch", "c", "u", 60, 20) is None
        own_redis.stop()
        assert await limits.reserve("twitch", "c", "v", 60, 20) is None  # served by the fallback
        assert not link.available
        assert await limits.reserve("twitch", "c", "v", 60, 20) == "user"  # the fallback remembers
    assert len(fallback) == 2  # v's cooldown and the channel: only what went through the fallback
    assert fallbacks("rate_limit") - before == 2


async def test_postgresql_unavailable_falls_back_to_this_process():
    never_started = Database("postgresql://nobody@127.0.0.1:1/none", min_size=1, max_size=1, timeout=1)
    limits = PgReplyLimits(never_started, ReplyRateLimiter(60, 20))
    assert await limits.reserve("twitch", "c", "u", 60, 20) is None
    assert await limits.reserve("twitch", "c", "u", 60, 20) == "user"
