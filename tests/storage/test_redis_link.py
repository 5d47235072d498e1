"""The Redis link: a hung or dead Redis costs one bounded call, then none until the probe sees it
answer again; recovery hooks run before calls use Redis again."""

from __future__ import annotations

import asyncio

import pytest

from observability import metrics
from storage.redis_link import RedisUnavailable
from tests.server_thread import free_port
from tests.shared_state import redis_link
from tests.waiting import async_wait_until


async def test_a_hung_redis_fails_the_call_within_its_bound_then_is_skipped():
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts, reads nothing, never answers

    port = free_port()
    server = await asyncio.start_server(silent, "127.0.0.1", port)
    link = redis_link(f"redis://127.0.0.1:{port}/0", "t:", timeout_s=0.1)
    try:
        with pytest.raises(RedisUnavailable):
            await link.call("dedupe", lambda: link.client.get("anything"))
        assert not link.available and link.last_error
        connections = len(accepted)
        with pytest.raises(RedisUnavailable):  # known unavailable: no network at all
            await link.call("context", lambda: link.client.get("anything"))
        assert len(accepted) == connections == 1
        assert link.snapshot()["available"] is False
    finally:
        await link.aclose()
        server.close()
        for writer in accepted:
            writer.close()


async def test_the_probe_brings_redis_back_after_the_recovery_hooks(own_redis):
    link = redis_link(own_redis.url, "t:", timeout_s=0.5, probe_s=0.05)
    seen_by_hook: list[bool] = []

    async def hook() -> None:
        seen_by_hook.append(link.available)
        await link.bounded(lambda: link.client.set("t:recovered", "1"))

    link.on_recovery(hook)
    metrics.track_redis(link)
    link.start()
    try:
        await link.call("dedupe", link.client.ping)
        own_redis.stop()
        with pytest.raises(RedisUnavailable):
            await link.call("dedupe", link.client.ping)
        assert metrics.REGISTRY.get_sample_value("ai_redis_available") == 0
        own_redis.start()  # the same port, empty
        await async_wait_until(lambda: link.available, timeout=10, message="Redis back")
        assert seen_by_hook == [False]  # ran once, before calls went to Redis again
        assert await link.call("dedupe", lambda: link.client.get("t:recovered")) == b"1"
        assert metrics.REGISTRY.get_sample_value("ai_redis_available") == 1
        assert link.snapshot() == {"available": True, "down_for_s": None, "error": None}
    finally:
        await link.aclose()


async def test_unreachable_at_start_the_first_probe_says_so():
    link = redis_link(f"redis://127.0.0.1:{free_port()}/0", "t:", timeout_s=0.2, probe_s=0.05)
    link.start()
    try:
        await async_wait_until(lambda: not link.available, timeout=5, message="marked unavailable")
        assert "Connection" in (link.last_error or "")
    finally:
        await link.aclose()
