"""MemoryQueue: dedupe by message id or by session + type + content within the window, bounded."""

from __future__ import annotations

import pytest

from api.models import InteractionRequest
from services.interaction import Interaction
from services.interaction_queue import MemoryQueue, QueueFull
from tests.support import interaction_body


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
