"""Reply rate limits: per-user cooldown, per-channel minute window, memory that follows activity."""

from __future__ import annotations

from interactions.rate_limits import ReplyRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_user_cooldown_refuses_then_allows():
    clock = Clock()
    limiter = ReplyRateLimiter(10, 100, clock=clock)
    assert limiter.try_acquire("twitch", "c1", "u1") is None
    clock.now += 9.9
    assert limiter.try_acquire("twitch", "c1", "u1") == "user"
    assert limiter.try_acquire("twitch", "c2", "u1") is None  # another channel: its own cooldown
    clock.now += 0.1
    assert limiter.try_acquire("twitch", "c1", "u1") is None


def test_channel_window_is_a_sliding_minute():
    clock = Clock()
    limiter = ReplyRateLimiter(0, 3, clock=clock)
    for i in range(3):
        assert limiter.try_acquire("twitch", "c1", f"u{i}") is None
        clock.now += 10
    assert limiter.try_acquire("twitch", "c1", "u9") == "channel"
    assert limiter.try_acquire("twitch", "other", "u9") is None
    clock.now += 30.1  # the first reply, 60.1 s ago now, left the window
    assert limiter.try_acquire("twitch", "c1", "u9") is None


def test_refusals_do_not_reserve_and_per_call_overrides_apply():
    clock = Clock()
    limiter = ReplyRateLimiter(10, 1, clock=clock)
    assert limiter.try_acquire("kick", "c", "a", user_cooldown_s=0, channel_per_min=2) is None
    assert limiter.try_acquire("kick", "c", "b", user_cooldown_s=0, channel_per_min=2) is None
    assert limiter.try_acquire("kick", "c", "c", user_cooldown_s=0, channel_per_min=2) == "channel"
    clock.now += 61
    assert limiter.try_acquire("kick", "c", "a", user_cooldown_s=0, channel_per_min=2) is None


def test_memory_holds_only_entries_that_can_still_refuse():
    clock = Clock()
    limiter = ReplyRateLimiter(10, 20, clock=clock)
    for i in range(5000):
        assert limiter.try_acquire("twitch", f"chan{i % 500}", f"user{i}") is None
        clock.now += 0.01  # 50 s of traffic
    assert len(limiter) > 500
    clock.now += 61  # a quiet minute later, one new message
    assert limiter.try_acquire("twitch", "fresh", "someone") is None
    assert len(limiter) == 2  # that user and that channel; everything else aged out


def test_longer_community_cooldown_is_not_pruned_early():
    clock = Clock()
    limiter = ReplyRateLimiter(1, 100, clock=clock)
    assert limiter.try_acquire("twitch", "c", "u", user_cooldown_s=120) is None
    clock.now += 90
    assert limiter.try_acquire("twitch", "c", "other") is None  # triggers pruning
    assert limiter.try_acquire("twitch", "c", "u", user_cooldown_s=120) == "user"


def test_hard_cap_bounds_the_maps():
    clock = Clock()
    limiter = ReplyRateLimiter(3600, 10_000, max_keys=100, clock=clock)
    for i in range(1000):
        limiter.try_acquire("twitch", f"c{i}", f"u{i}")
    assert len(limiter) <= 2 * 101


def test_a_channel_window_holds_at_most_the_per_minute_count():
    clock = Clock()
    limiter = ReplyRateLimiter(0, 3, clock=clock)
    for i in range(100):
        limiter.try_acquire("twitch", "c1", f"u{i}")
        clock.now += 1
    assert max(len(window) for window in limiter._channel_replies.values()) == 3


def test_an_active_channel_costs_a_few_hundred_bytes():
    import gc
    import tracemalloc

    clock = Clock()
    limiter = ReplyRateLimiter(0, 20, clock=clock)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):  # 30 s: every channel still in its minute
            assert limiter.try_acquire("twitch", f"twitch:channel:{i}", f"user-{i}") is None
            clock.now += 0.01
        gc.collect()
        per_channel = (tracemalloc.get_traced_memory()[0] - before) / 3000
    finally:
        tracemalloc.stop()
    assert per_channel < 300, per_channel  # key string, a one-time tuple, dict slot (a deque was ~1 KB)
