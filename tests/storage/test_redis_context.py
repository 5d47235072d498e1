"""Recent context in Redis (§12): shared by replicas and read there first; PostgreSQL stays the
record when configured; written-while-down conversations are dropped from Redis when it is back."""

from __future__ import annotations

import pytest

from storage.context import MemoryContextStore
from storage.errors import StoreUnavailable
from storage.pg_context import PgContextStore
from storage.redis_context import RedisContextStore
from tests.shared_state import pg_pools, redis_link, redis_links
from tests.storage.tcp_proxy import TcpProxy
from tests.waiting import async_wait_until

KEY = ("twitch", "twitch:channel:1", "viewer-1")


def pairs(history) -> list[tuple[str, str]]:
    return [(e.user_message, e.reply) for e in history]


def memory_backed(link, limit: int = 3) -> RedisContextStore:
    return RedisContextStore(link, MemoryContextStore(limit, 1800, 100), durable=False, history_limit=limit, ttl_s=1800)


async def test_replicas_share_the_history_oldest_first_trimmed(redis_space):
    async with redis_links(redis_space.url, redis_space.prefix) as links:
        a, b = (memory_backed(link, limit=2) for link in links)
        for i in range(3):
            await (a if i % 2 else b).append(KEY, f"user {i}", f"reply {i}")
        await a.append(("twitch", "twitch:channel:2", "viewer-1"), "elsewhere", "there")
        assert pairs(await a.history(KEY)) == pairs(await b.history(KEY)) == [("user 1", "reply 1"), ("user 2", "reply 2")]
        assert await b.history(("twitch", "twitch:channel:1", "nobody")) == []
        assert await b.erase_user("twitch", "viewer-1") == 3  # two here, one in the other channel
        assert await a.history(KEY) == []
    assert redis_space.keys("ctx") == []


async def test_with_postgresql_redis_is_read_first_and_filled_from_the_record(redis_space, pg):
    async with redis_links(redis_space.url, redis_space.prefix) as links, pg_pools(pg.dsn) as dbs:
        a, b = (RedisContextStore(link, PgContextStore(db, 5, 1800), durable=True, history_limit=5, ttl_s=1800)
                for link, db in zip(links, dbs))
        await a.append(KEY, "hi", "hello!")
        assert redis_space.keys("ctx:") == []  # no list yet: Redis never holds a tail without its beginning
        assert pairs(await b.history(KEY)) == [("hi", "hello!")]  # a miss: read from PostgreSQL, filled
        assert len(redis_space.keys("ctx:")) == 1
        await b.append(KEY, "how are you?", "great!")  # extends the list that exists
        pg.query("DELETE FROM ai_conversation_context")  # only Redis can answer now
        assert pairs(await a.history(KEY)) == [("hi", "hello!"), ("how are you?", "great!")]
        await a.append(KEY, "bye", "see you")
        assert await b.erase_user("twitch", "viewer-1") == 1  # the rows PostgreSQL held
        assert await a.history(KEY) == []
    assert redis_space.keys("ctx") == []


async def test_redis_down_the_backing_store_serves_and_stale_lists_are_dropped_when_it_is_back(redis_space, pg):
    proxy = TcpProxy("127.0.0.1", 6379).start()
    cut_off = redis_link(f"redis://127.0.0.1:{proxy.port}/0", redis_space.prefix, timeout_s=0.5)
    try:
        async with redis_links(redis_space.url, redis_space.prefix, n=1) as (direct,), pg_pools(pg.dsn) as dbs:
            a = RedisContextStore(cut_off, PgContextStore(dbs[0], 5, 1800), durable=True, history_limit=5, ttl_s=1800)
            b = RedisContextStore(direct, PgContextStore(dbs[1], 5, 1800), durable=True, history_limit=5, ttl_s=1800)
            cut_off.start()
            await a.append(KEY, "one", "1")
            assert pairs(await b.history(KEY)) == [("one", "1")]  # filled
            proxy.cut()
            await a.append(KEY, "two", "2")  # in PostgreSQL; Redis could not be told
            assert not cut_off.available
            assert pairs(await a.history(KEY)) == [("one", "1"), ("two", "2")]  # PostgreSQL serves a
            with pytest.raises(StoreUnavailable):
                await a.erase_user("twitch", "somebody")
            assert pairs(await b.history(KEY)) == [("one", "1")]  # the cost: b reads Redis's older copy
            proxy.restore()
            await async_wait_until(lambda: cut_off.available, timeout=10, message="Redis back")
            assert pairs(await b.history(KEY)) == [("one", "1"), ("two", "2")]  # dropped, so read from the record
    finally:
        await cut_off.aclose()
        proxy.stop()


async def test_memory_backed_redis_down_keeps_this_processs_copy(own_redis):
    async with redis_links(own_redis.url, "t:", n=1, timeout_s=0.5) as (link,):
        store = memory_backed(link)
        await store.append(KEY, "before", "b")
        own_redis.stop()
        await store.append(KEY, "during", "d")
        assert pairs(await store.history(KEY)) == [("before", "b"), ("during", "d")]
        assert not link.available
