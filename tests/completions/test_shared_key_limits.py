"""The OpenAI API's per-key limit shared by replicas (§12): one token bucket per key in Redis (Lua) or
PostgreSQL (one function call), so two replicas together allow a key its rate, not twice it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import pytest

from completions.limits import KeyRateLimiter, key_id
from completions.shared_limits import PgKeyLimits, RedisKeyLimits
from storage.db import Database
from tests.shared_state import pg_pools, redis_links
from tests.storage.conftest import pg, pg_available  # noqa: F401 - fixtures
from tests.waiting import async_wait_until

BACKENDS = ["redis", "postgresql"]
KEY = key_id("sk-test-key")


@contextlib.asynccontextmanager
async def replicas(backend: str, request: pytest.FixtureRequest, rate: int) -> AsyncIterator[list]:
    if backend == "redis":
        space = request.getfixturevalue("redis_space")
        async with redis_links(space.url, space.prefix) as links:
            yield [RedisKeyLimits(link, KeyRateLimiter(rate)) for link in links]
    else:
        schema = request.getfixturevalue("pg")
        async with pg_pools(schema.dsn) as dbs:
            yield [PgKeyLimits(db, KeyRateLimiter(rate)) for db in dbs]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_replicas_share_one_bucket_per_key(backend, request):
    async with replicas(backend, request, rate=5) as (a, b):
        decisions = await asyncio.gather(*((a if i % 2 else b).take(KEY) for i in range(12)))
        allowed = [d for d in decisions if d.allowed]
        refused = [d for d in decisions if not d.allowed]
        assert len(allowed) == 5 and len(refused) == 7
        assert sorted(d.remaining for d in allowed) == [0, 1, 2, 3, 4]
        assert all(d.limit == 5 and d.remaining == 0 and d.retry_after_s >= 1 for d in refused)
        assert (await a.take(key_id("another key"))).allowed  # each key its own bucket


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_shared_bucket_refills_at_the_rate(backend, request):
    async with replicas(backend, request, rate=60) as (a, b):  # one request a second
        decisions = await asyncio.gather(*((a if i % 2 else b).take(KEY) for i in range(61)))
        assert sum(d.allowed for d in decisions) == 60
        assert not (await b.take(KEY)).allowed

        async def allowed_again() -> bool:
            return (await a.take(KEY)).allowed

        await async_wait_until(allowed_again, timeout=10, interval=0.05, message="a token refilled")


async def test_without_redis_or_postgresql_the_bucket_is_this_processs(own_redis):
    async with redis_links(own_redis.url, "t:", n=1, timeout_s=0.5) as (link,):
        limits = RedisKeyLimits(link, KeyRateLimiter(2))
        assert (await limits.take(KEY)).allowed
        own_redis.stop()
        assert [(await limits.take(KEY)).allowed for _ in range(3)] == [True, True, False]  # a fresh bucket here
    never_started = Database("postgresql://nobody@127.0.0.1:1/none", min_size=1, max_size=1, timeout=1)
    pg_limits = PgKeyLimits(never_started, KeyRateLimiter(1))
    assert [(await pg_limits.take(KEY)).allowed for _ in range(2)] == [True, False]
