"""MemoryQueue: dedupe by message id or by session + type + content within the window, bounded."""

from __future__ import annotations

import asyncio

import pytest

from interactions.model import InteractionRequest
from interactions.model import Interaction
from interactions.queue.base import QueueFull
from interactions.queue.memory import MemoryQueue
from tests.support import interaction_body
from tests.waiting import async_wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def interaction(message: str = "hello there", **fields) -> Interaction:
    return Interaction(InteractionRequest.model_validate(interaction_body(message, **fields)), request_id="rid")


async def test_same_message_id_is_a_duplicate_with_the_first_id():
    queue = MemoryQueue(10, 300, clock=Clock())
    first = interaction(message_id="router-1")
    accepted = await queue.enqueue(first)
    assert (accepted.interaction_id, accepted.duplicate) == (first.id, False)
    again = await queue.enqueue(interaction("other text", message_id="router-1"))
    assert (again.interaction_id, again.duplicate) == (first.id, True)
    assert queue.depth() == 1


async def test_without_message_id_session_type_and_content_decide():
    queue = MemoryQueue(10, 300, clock=Clock())
    first = interaction("hi", message_id=None, session_id="s1")
    await queue.enqueue(first)
    same = await queue.enqueue(interaction("hi", message_id=None, session_id="s1"))
    assert (same.interaction_id, same.duplicate) == (first.id, True)
    for other in (interaction("hi", message_id=None, session_id="s2"),
                  interaction("hi!", message_id=None, session_id="s1"),
                  interaction("hi", message_id=None, session_id="s1", message_type="subscription")):
        assert not (await queue.enqueue(other)).duplicate
    assert queue.depth() == 4


async def test_the_window_ends_and_the_same_id_is_new_again():
    clock = Clock()
    queue = MemoryQueue(10, 300, clock=clock)
    await queue.enqueue(interaction(message_id="m"))
    clock.now += 299.9
    assert (await queue.enqueue(interaction(message_id="m"))).duplicate
    clock.now += 0.1
    later = interaction(message_id="m")
    accepted = await queue.enqueue(later)
    assert (accepted.interaction_id, accepted.duplicate) == (later.id, False)
    assert (await queue.enqueue(interaction(message_id="m"))).interaction_id == later.id


async def test_a_refused_interaction_is_not_remembered():
    queue = MemoryQueue(1, 300, clock=Clock())
    await queue.enqueue(interaction(message_id="a"))
    with pytest.raises(QueueFull):
        await queue.enqueue(interaction(message_id="b"))
    await queue.claim()
    retried = interaction(message_id="b")
    accepted = await queue.enqueue(retried)  # the router's retry is accepted, not a "duplicate" of nothing
    assert (accepted.interaction_id, accepted.duplicate) == (retried.id, False)


async def test_dedupe_ids_are_capped():
    queue = MemoryQueue(1000, 300, dedupe_max_keys=50, clock=Clock())
    for i in range(200):
        await queue.enqueue(interaction(message_id=f"m{i}"))
    assert len(queue._seen) == 50
    assert not (await queue.enqueue(interaction(message_id="m0"))).duplicate  # dropped by the cap
    assert (await queue.enqueue(interaction(message_id="m199"))).duplicate


async def test_a_zero_window_keeps_no_ids():
    queue = MemoryQueue(10, 0)
    await queue.enqueue(interaction(message_id="m"))
    assert not (await queue.enqueue(interaction(message_id="m"))).duplicate
    assert queue.depth() == 2


async def test_erase_user_drops_only_that_users_queued_interactions():
    queue = MemoryQueue(10, 300, clock=Clock())
    for user, platform in (("u1", "twitch"), ("u2", "twitch"), ("u1", "discord"), ("u1", "twitch")):
        await queue.enqueue(interaction(user_id=user, platform=platform))
    assert await queue.erase_user("twitch", "u1") == 2
    assert [(i.request.platform, i.request.user_id) for i in queue.take_all()] == [("twitch", "u2"), ("discord", "u1")]


# --- waking workers ---------------------------------------------------------------------------------
class Workers:
    """`count` claim loops over one queue; each records (worker index, message) for what it takes.
    `gate`, when set, holds every taken interaction until released (an LLM call in progress)."""

    def __init__(self, queue: MemoryQueue, count: int, gate: "asyncio.Event | None" = None) -> None:
        self.queue, self.gate = queue, gate
        self.taken: list[tuple[int, str]] = []
        self.holding = 0
        self.tasks = [asyncio.create_task(self._loop(i)) for i in range(count)]

    async def _loop(self, index: int) -> None:
        while True:
            item = await self.queue.claim()
            self.taken.append((index, item.request.message_content))
            if self.gate is not None:
                self.holding += 1
                await self.gate.wait()
                self.holding -= 1

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def waiting_workers(queue: MemoryQueue, count: int, gate: "asyncio.Event | None" = None) -> Workers:
    """Workers started and given a loop turn: each is waiting in claim() when this returns."""
    workers = Workers(queue, count, gate)
    await asyncio.sleep(0)
    return workers


async def enqueue_each(queue: MemoryQueue, prefix: str, numbers: range) -> None:
    """Enqueue "<prefix> <n>" for each n, with distinct message ids, without a loop turn between."""
    for n in numbers:
        await queue.enqueue(interaction(f"{prefix} {n}", message_id=f"{prefix}-{n}"))


class CountingQueue(MemoryQueue):
    """Counts the workers it wakes."""

    wakeups = 0

    def _wake_one(self) -> None:
        waking = self._waking
        super()._wake_one()
        self.wakeups += self._waking - waking


async def test_a_burst_that_ends_at_once_wakes_two_workers_not_one_each():
    queue = CountingQueue(1000, 300, clock=Clock())
    workers = await waiting_workers(queue, 32)
    await enqueue_each(queue, "quiet", range(50))
    await async_wait_until(lambda: len(workers.taken) == 50, message="all 50 taken")
    await workers.stop()
    assert [m for _, m in workers.taken] == [f"quiet {n}" for n in range(50)]
    # One worker woken for the burst, and the one it woke when it left others behind (that one
    # finds the queue empty: the first took the rest, one after the other, without waiting).
    assert queue.wakeups == 2
    assert len({w for w, _ in workers.taken}) == 1
    assert queue.depth() == 0


async def test_interactions_that_wait_still_spread_over_the_workers():
    queue = MemoryQueue(1000, 300, clock=Clock())
    gate = asyncio.Event()
    workers = await waiting_workers(queue, 8, gate)
    await enqueue_each(queue, "slow", range(5))
    await async_wait_until(lambda: workers.holding == 5, message="five workers holding one each")
    assert len({w for w, _ in workers.taken}) == 5 and queue.depth() == 0
    await enqueue_each(queue, "slow", range(5, 12))  # 3 idle workers left: 3 more taken, 4 wait
    await async_wait_until(lambda: workers.holding == 8, message="all eight workers holding")
    assert queue.depth() == 4
    gate.set()
    await async_wait_until(lambda: len(workers.taken) == 12, message="all 12 taken")
    await workers.stop()
    assert sorted(m for _, m in workers.taken) == sorted(f"slow {n}" for n in range(12))


async def test_a_woken_worker_cancelled_before_it_runs_passes_the_wake_on():
    queue = MemoryQueue(10, 300, clock=Clock())
    first = await waiting_workers(queue, 1)
    second = await waiting_workers(queue, 1)  # the most recently idle one is woken first
    await queue.enqueue(interaction("for someone", message_id="wake-1"))
    await second.stop()  # cancelled before it ran: its wake-up goes to the other worker
    await async_wait_until(lambda: first.taken, timeout=2, message="the other worker to take it")
    await first.stop()
    assert [m for _, m in first.taken] == ["for someone"] and second.taken == []
    assert queue.depth() == 0


async def test_erase_user_while_workers_wait_and_a_full_queue_refuses():
    queue = MemoryQueue(2, 300, clock=Clock())
    gate = asyncio.Event()
    workers = await waiting_workers(queue, 1, gate)
    await queue.enqueue(interaction("held", message_id="e-0", user_id="keep"))
    await async_wait_until(lambda: workers.holding == 1, message="the worker holding one")
    await queue.enqueue(interaction("mine", message_id="e-1", user_id="gone"))
    await queue.enqueue(interaction("theirs", message_id="e-2", user_id="keep"))
    with pytest.raises(QueueFull):
        await queue.enqueue(interaction("one too many", message_id="e-3"))
    assert await queue.erase_user("twitch", "gone") == 1
    gate.set()
    await async_wait_until(lambda: len(workers.taken) == 2, message="the kept one taken")
    await workers.stop()
    assert [m for _, m in workers.taken] == ["held", "theirs"]
