"""MemoryContextStore: last N exchanges per (platform, entity, user), oldest first, TTL, LRU cap, erase."""

from __future__ import annotations

import gc
import tracemalloc

from storage.context import Exchange, MemoryContextStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEY = ("twitch", "twitch:channel:1", "u1")


async def test_keeps_the_last_n_exchanges_oldest_first():
    clock = Clock()
    store = MemoryContextStore(3, 1800, 100, clock=clock)
    assert await store.history(KEY) == []
    for i in range(5):
        await store.append(KEY, f"q{i}", f"a{i}")
        clock.now += 1
    history = await store.history(KEY)
    assert history == [Exchange("q2", "a2", 1002.0), Exchange("q3", "a3", 1003.0), Exchange("q4", "a4", 1004.0)]
    assert await store.history(("twitch", "twitch:channel:2", "u1")) == []  # another channel
    assert await store.history(("discord", "twitch:channel:1", "u1")) == []  # another platform


async def test_a_history_limit_of_one_keeps_only_the_latest():
    store = MemoryContextStore(1, 1800, 100, clock=Clock())
    await store.append(KEY, "q0", "a0")
    await store.append(KEY, "q1", "a1")
    assert [(e.user_message, e.reply) for e in await store.history(KEY)] == [("q1", "a1")]


async def test_a_zero_history_limit_keeps_nothing():
    store = MemoryContextStore(0, 1800, 100, clock=Clock())
    await store.append(KEY, "q", "a")
    assert await store.history(KEY) == [] and len(store) == 0


async def test_exchanges_expire_one_by_one():
    clock = Clock()
    store = MemoryContextStore(5, 100, 100, clock=clock)
    await store.append(KEY, "old", "a")
    clock.now += 60
    await store.append(KEY, "new", "b")
    clock.now += 40  # "old" is exactly 100 s old: still kept (expired only when older)
    assert [e.user_message for e in await store.history(KEY)] == ["old", "new"]
    clock.now += 0.5
    assert [e.user_message for e in await store.history(KEY)] == ["new"]
    await store.append(KEY, "newer", "c")
    assert [e.user_message for e in await store.history(KEY)] == ["new", "newer"]
    clock.now += 101
    assert await store.history(KEY) == []
    assert len(store) == 0  # a conversation with nothing live is not kept


async def test_least_recently_used_conversations_go_first_at_the_cap():
    store = MemoryContextStore(5, 1800, 3, clock=Clock())
    keys = [("twitch", "c", f"u{i}") for i in range(4)]
    for key in keys[:3]:
        await store.append(key, "q", "a")
    await store.history(keys[0])  # read: most recently used now
    await store.append(keys[3], "q", "a")
    assert len(store) == 3
    assert await store.history(keys[1]) == []  # the least recently used one went
    assert all([await store.history(k) for k in (keys[0], keys[2], keys[3])])


async def test_idle_expired_conversations_are_dropped_when_new_ones_arrive():
    clock = Clock()
    store = MemoryContextStore(5, 100, 10_000, clock=clock)
    for i in range(50):
        await store.append(("twitch", "c", f"u{i}"), "q", "a")
    clock.now += 101
    await store.append(KEY, "q", "a")
    assert len(store) == 1


async def test_erase_user_removes_all_their_conversations_on_that_platform_only():
    store = MemoryContextStore(5, 1800, 100, clock=Clock())
    for entity in ("c1", "c2"):
        await store.append(("twitch", entity, "u1"), "q", "a")
    await store.append(("twitch", "c1", "u1"), "q2", "a2")
    await store.append(("discord", "c1", "u1"), "q", "a")
    await store.append(("twitch", "c1", "u2"), "q", "a")
    await store.append(("twitch", "u1", "c1"), "q", "a")  # "u1" as the entity, not the user
    assert await store.erase_user("twitch", "u1") == 3
    assert await store.history(("twitch", "c1", "u1")) == []
    assert await store.history(("twitch", "c2", "u1")) == []
    for kept in (("discord", "c1", "u1"), ("twitch", "c1", "u2"), ("twitch", "u1", "c1")):
        assert len(await store.history(kept)) == 1
    assert await store.erase_user("twitch", "u1") == 0


async def test_key_parts_holding_the_separator_stay_apart():
    store = MemoryContextStore(5, 1800, 100, clock=Clock())
    await store.append(("twitch", "a\x00b", "c"), "first", "x")
    await store.append(("twitch", "a", "b\x00c"), "second", "y")
    assert [e.user_message for e in await store.history(("twitch", "a\x00b", "c"))] == ["first"]
    assert [e.user_message for e in await store.history(("twitch", "a", "b\x00c"))] == ["second"]
    assert await store.erase_user("twitch", "b\x00c") == 1


async def test_a_conversation_costs_well_under_a_kilobyte():
    store = MemoryContextStore(5, 1800, 10_000, clock=Clock())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5000):  # fresh strings, as a parsed request would bring
            key = ("twitch", f"twitch:channel:{i}", f"user-{i}")
            await store.append(key, f"Viewer {i}: hello chat! how is everyone doing",
                               f"Hey Viewer {i}! Doing great, thanks for asking, enjoy the stream!")
        gc.collect()
        per_conversation = (tracemalloc.get_traced_memory()[0] - before) / 5000
    finally:
        tracemalloc.stop()
    # ~230 B of texts, ~90 B key, ~90 B tuple and time, plus the dict slot (was ~1.4 KB)
    assert per_conversation < 600, per_conversation
