"""The durable queue against the real PostgreSQL: ACK semantics, dedupe, bounds, leases, takeover."""

from __future__ import annotations

import asyncio

import pytest

from api.models import InteractionRequest
from services import metrics
from services.interaction import Interaction
from services.interaction_queue import QueueFull, StoreUnavailable
from storage.db import Database
from storage.pg_queue import PgQueue
from tests.support import interaction_body
from tests.waiting import async_wait_until


def make(message: str = "hello", **fields) -> Interaction:
    return Interaction(InteractionRequest.model_validate(interaction_body(message, **fields)), request_id="rid-1")


@pytest.fixture
async def db(pg):
    database = Database(pg.dsn, min_size=1, max_size=5, timeout=5)
    await database.start()
    assert await database.wait_connected(15)
    yield database
    await database.close()


@pytest.fixture
async def queues(db):
    """Start queues on `db` (one per instance name); all closed at the end."""
    made: list[PgQueue] = []

    def factory(owner: str = "a", **kw) -> PgQueue:
        options = {"max_queue": 100, "dedupe_window_s": 300, "lease_s": 30, "poll_s": 0.05, **kw}
        queue = PgQueue(db, owner=owner, **options)
        queue.start()
        made.append(queue)
        return queue

    yield factory
    for queue in made:
        await queue.aclose()


async def claim(queue: PgQueue, timeout: float = 5) -> Interaction:
    return await asyncio.wait_for(queue.claim(), timeout)


async def test_enqueue_commits_and_claim_restores_the_interaction(pg, queues):
    queue = queues()
    item = make("hello there", community_id=4, metadata={"k": [1, 2]})
    assert (await queue.enqueue(item)).duplicate is False
    assert pg.value("SELECT status FROM ai_interaction_queue WHERE id = $1", item.id) == "queued"
    got = await claim(queue)
    assert (got.id, got.request, got.request_id) == (item.id, item.request, "rid-1")
    assert 0 <= got.age_s < 60
    row = pg.query("SELECT status, lease_owner, attempts FROM ai_interaction_queue")[0]
    assert tuple(row) == ("working", "a", 1)
    await queue.finish(got, "replied")
    row = pg.query("SELECT status, outcome, payload, user_id, finished_at FROM ai_interaction_queue")[0]
    assert (row["status"], row["outcome"], row["payload"], row["user_id"]) == ("done", "replied", None, None)
    assert row["finished_at"] is not None


async def test_duplicates_get_the_first_id_until_the_window_expires(pg, queues):
    queue = queues()
    first = make("hello", message_id="router-1")
    assert (await queue.enqueue(first)).duplicate is False
    again = await queue.enqueue(make("different text", message_id="router-1"))
    assert again == type(again)(first.id, True)
    body = {"session_id": "s-9", "message_id": None}
    by_content = make("same words", **body)
    assert (await queue.enqueue(by_content)).duplicate is False
    assert (await queue.enqueue(make("same words", **body))).interaction_id == by_content.id
    pg.query("UPDATE ai_interaction_dedupe SET expires_at = now() - interval '1 second'")
    later = make("hello", message_id="router-1")
    assert await queue.enqueue(later) == type(again)(later.id, False)


async def test_concurrent_duplicates_on_two_instances_accept_exactly_one(pg, queues, db):
    other_db = Database(pg.dsn, min_size=1, max_size=5, timeout=5)
    await other_db.start()
    assert await other_db.wait_connected(15)
    try:
        a, b = queues("a"), PgQueue(other_db, owner="b", max_queue=100, dedupe_window_s=300, lease_s=30, poll_s=1)
        items = [make("hi", message_id="same-msg") for _ in range(10)]
        results = await asyncio.gather(*((a if i % 2 else b).enqueue(it) for i, it in enumerate(items)))
        assert sum(not r.duplicate for r in results) == 1
        assert len({r.interaction_id for r in results}) == 1
        assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 1
    finally:
        await other_db.close()


async def test_max_queue_bounds_waiting_rows_and_a_refused_key_is_not_remembered(pg, queues):
    queue = queues(max_queue=3)
    queue.stop_claiming()
    for i in range(3):
        await queue.enqueue(make("hi", message_id=f"m{i}"))
    with pytest.raises(QueueFull):
        await queue.enqueue(make("hi", message_id="m-over"))
    assert pg.value("SELECT count(*) FROM ai_interaction_dedupe WHERE key = 'm:m-over'") == 0
    pg.query("UPDATE ai_interaction_queue SET status = 'done' WHERE ctid IN (SELECT ctid FROM ai_interaction_queue LIMIT 1)")
    assert (await queue.enqueue(make("hi", message_id="m-over"))).duplicate is False


async def test_a_live_lease_is_renewed_and_a_dead_one_is_taken_over(pg, queues):
    alive, other = queues("alive", lease_s=0.3), queues("other", lease_s=0.3)
    item = make("hello")
    await alive.enqueue(item)
    got = await claim(alive)
    other_claim = asyncio.ensure_future(other.claim())
    await asyncio.sleep(0)  # the other instance keeps looking while the lease is renewed
    await async_wait_until(lambda: pg.value(
        "SELECT lease_until > now() + interval '0.2 second' FROM ai_interaction_queue"), message="a renewal")
    assert not other_claim.done()
    before = metrics.queue_takeovers_total._value.get()
    alive._leases._task.cancel()  # the instance "dies": nobody renews its lease any more
    taken = await asyncio.wait_for(other_claim, 5)
    assert taken.id == got.id == item.id
    assert pg.value("SELECT attempts FROM ai_interaction_queue") == 2
    assert pg.value("SELECT lease_owner FROM ai_interaction_queue") == "other"
    assert metrics.queue_takeovers_total._value.get() == before + 1


async def test_closing_puts_unfinished_claims_back_at_once(pg, queues):
    first, second = queues("first"), queues("second")
    second.stop_claiming()
    item = make("hello")
    await first.enqueue(item)
    assert (await claim(first)).id == item.id
    first.stop_claiming()
    await first.aclose()
    assert pg.value("SELECT status FROM ai_interaction_queue") == "queued"
    third = queues("third")
    assert (await claim(third)).id == item.id


async def test_erase_removes_only_that_users_waiting_rows(pg, queues):
    queue = queues()
    queue.stop_claiming()
    for user in ("gone", "gone", "stays"):
        await queue.enqueue(make("hi", user_id=user))
    await queue.enqueue(make("hi", user_id="gone", platform="discord"))
    assert await queue.erase_user("twitch", "gone") == 2
    assert sorted(r[0] for r in pg.query("SELECT user_id FROM ai_interaction_queue")) == ["gone", "stays"]


async def test_store_not_reachable_means_store_unavailable_never_an_ack():
    down = Database("postgresql://postgres@127.0.0.1:1/test", min_size=1, max_size=2, timeout=1)
    await down.start()
    try:
        queue = PgQueue(down, owner="x", max_queue=10, dedupe_window_s=300, lease_s=30, poll_s=0.05)
        with pytest.raises(StoreUnavailable) as caught:
            await queue.enqueue(make("hello"))
        assert caught.value.status == 503 and caught.value.headers["Retry-After"]
        assert await queue.reachable() is False
    finally:
        await down.close()


async def test_terminated_connections_come_back_on_their_own(pg, queues):
    queue = queues()
    await queue.enqueue(make("hello", message_id="before"))
    assert pg.terminate() >= 1

    async def accepted() -> bool:
        try:
            await queue.enqueue(make("hello", message_id="after"))
        except StoreUnavailable:
            return False  # the router would retry: a 503, never a false ACK
        return True
    await async_wait_until(accepted, timeout=10, message="enqueue after termination")
    assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 2
