"""Dedupe keys in Redis (§12): a router retry that lands on another replica is still a duplicate; a
refused interaction leaves no key behind; Redis down, each replica dedupes on its own."""

from __future__ import annotations

import asyncio

import pytest

from interactions.model import Interaction, InteractionRequest
from interactions.queue.base import QueueFull
from interactions.queue.memory import MemoryQueue
from interactions.queue.shared_dedupe import SharedDedupe
from tests.shared_state import redis_links
from tests.support import interaction_body


def interaction(message: str = "hello there", **fields) -> Interaction:
    return Interaction(InteractionRequest.model_validate(interaction_body(message, **fields)), request_id="rid")


async def test_a_retry_on_another_replica_is_a_duplicate_with_the_first_id(redis_space):
    async with redis_links(redis_space.url, redis_space.prefix) as links:
        a, b = (MemoryQueue(10, 300, shared=SharedDedupe(link, 300)) for link in links)
        first = interaction(message_id="router-1")
        assert not (await a.enqueue(first)).duplicate
        again = await b.enqueue(interaction(message_id="router-1"))
        assert (again.interaction_id, again.duplicate) == (first.id, True)
        assert (a.depth(), b.depth()) == (1, 0)
        # no message id: session + type + content decide, across replicas too
        assert not (await b.enqueue(interaction("same words", session_id="s", message_id=None))).duplicate
        assert (await a.enqueue(interaction("same words", session_id="s", message_id=None))).duplicate
    keys = redis_space.keys("dd")
    assert len(keys) == 2 and "dd:m:router-1" in keys


async def test_simultaneous_copies_on_two_replicas_are_accepted_once(redis_space):
    async with redis_links(redis_space.url, redis_space.prefix) as links:
        a, b = (MemoryQueue(100, 300, shared=SharedDedupe(link, 300)) for link in links)
        copies = [interaction(message_id="burst") for _ in range(20)]
        answers = await asyncio.gather(*((a if i % 2 else b).enqueue(c) for i, c in enumerate(copies)))
    assert sum(not x.duplicate for x in answers) == 1
    assert len({x.interaction_id for x in answers}) == 1
    assert a.depth() + b.depth() == 1


async def test_a_refused_interaction_leaves_no_dedupe_key(redis_space):
    async with redis_links(redis_space.url, redis_space.prefix) as links:
        full, roomy = (MemoryQueue(1, 300, shared=SharedDedupe(link, 300)) for link in links)
        await full.enqueue(interaction(message_id="filler"))
        with pytest.raises(QueueFull):
            await full.enqueue(interaction(message_id="retried"))
        retried = interaction(message_id="retried")  # the router retries elsewhere: accepted there
        assert (await roomy.enqueue(retried)).interaction_id == retried.id
        again = await full.enqueue(interaction(message_id="retried"))
        assert (again.interaction_id, again.duplicate) == (retried.id, True)


async def test_redis_down_each_replica_dedupes_on_its_own(own_redis):
    async with redis_links(own_redis.url, "t:", timeout_s=0.5) as links:
        a, b = (MemoryQueue(10, 300, shared=SharedDedupe(link, 300)) for link in links)
        own_redis.stop()
        first = interaction(message_id="during-outage")
        assert not (await a.enqueue(first)).duplicate  # accepted: Redis is not needed to ACK
        assert (await a.enqueue(interaction(message_id="during-outage"))).interaction_id == first.id
        assert not (await b.enqueue(interaction(message_id="during-outage"))).duplicate  # the cost: per process
        assert not links[0].available and not links[1].available
