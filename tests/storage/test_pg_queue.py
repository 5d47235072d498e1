"""The durable queue against the real PostgreSQL: ACK semantics, dedupe, bounds, leases, takeover."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from interactions.model import InteractionRequest
from observability import metrics
from interactions.model import Interaction
from interactions.queue.base import QueueFull
from storage.errors import StoreUnavailable
from storage.db import Database
from interactions.queue.postgres import PgQueue
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
    before = metrics.REGISTRY.get_sample_value("ai_queue_takeovers_total")
    alive._leases._task.cancel()  # the instance "dies": nobody renews its lease any more
    taken = await asyncio.wait_for(other_claim, 5)
    assert taken.id == got.id == item.id
    assert pg.value("SELECT attempts FROM ai_interaction_queue") == 2
    assert pg.value("SELECT lease_owner FROM ai_interaction_queue") == "other"
    assert metrics.REGISTRY.get_sample_value("ai_queue_takeovers_total") == before + 1


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
        assert caught.value.retry_after_s > 0  # answered 503 with Retry-After (tests/storage/test_pg_app.py)
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


# --- round trips: one statement per enqueue, claims and outcomes in batches, few NOTIFYs -------------
@contextlib.contextmanager
def recorded_statements(db: Database):
    """(task name, SQL) of every statement run on connections from `db.acquire()` meanwhile,
    tagged with the task that acquired the connection (asyncpg logs after a loop turn)."""
    records: list[tuple[str, str]] = []
    original = db.acquire

    @contextlib.asynccontextmanager
    async def acquire():
        name = asyncio.current_task().get_name()
        logger = lambda record: records.append((name, " ".join(record.query.split())))  # noqa: E731
        async with original() as conn:
            conn.add_query_logger(logger)
            try:
                yield conn
            finally:
                conn.remove_query_logger(logger)

    db.acquire = acquire
    try:
        yield records
    finally:
        del db.acquire


def mine(records: list[tuple[str, str]]) -> list[str]:
    """The statements the test's own task ran, and the inserts run on its behalf."""
    names = {asyncio.current_task().get_name(), "queue-enqueue"}
    return [sql for task, sql in records if task in names]


async def test_an_enqueue_is_one_statement_and_so_is_a_duplicate(pg, queues, db):
    queue = queues()
    first = make("hello", message_id="one-statement")
    with recorded_statements(db) as records:
        assert (await queue.enqueue(first)).duplicate is False
        again = await queue.enqueue(make("hello", message_id="one-statement"))
        await asyncio.sleep(0)  # the query logger reports on the next loop turn
    statements = mine(records)
    assert len(statements) == 2, statements  # no BEGIN/COMMIT, no separate dedupe step, no reset
    assert all("ai_interaction_dedupe" in s and "INSERT INTO ai_interaction_queue" in s for s in statements)
    assert not any("count(" in s for s in statements), "far from the bound nothing is counted"
    assert (again.interaction_id, again.duplicate) == (first.id, True)
    assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 1
    assert pg.value("SELECT interaction_id::text FROM ai_interaction_dedupe") == first.id


async def test_without_dedupe_an_enqueue_is_a_plain_insert(pg, queues, db):
    queue = queues(dedupe_window_s=0)
    with recorded_statements(db) as records:
        a = await queue.enqueue(make("same", message_id="x"))
        b = await queue.enqueue(make("same", message_id="x"))
        await asyncio.sleep(0)
    assert not a.duplicate and not b.duplicate and a.interaction_id != b.interaction_id
    assert [s.split()[0] for s in mine(records)] == ["INSERT", "INSERT"]
    assert pg.value("SELECT count(*) FROM ai_interaction_dedupe") == 0


async def test_a_released_connection_costs_no_reset_round_trip(db):
    with recorded_statements(db) as records:
        async with db.acquire() as conn:
            await conn.fetchval("SELECT 1")
        async with db.acquire() as conn:
            await conn.fetchval("SELECT 2")
        await asyncio.sleep(0)
    assert mine(records) == ["SELECT 1", "SELECT 2"]


async def test_the_bound_is_counted_only_from_half_full_and_then_exactly(pg, queues, db):
    queue = queues(max_queue=10)
    queue.stop_claiming()
    # another instance queued 6 rows: seen by the next poll, so the estimate passes half the bound
    pg.query("""INSERT INTO ai_interaction_queue (id, payload, request_id)
                SELECT gen_random_uuid(), '{}', 'other' FROM generate_series(1, 6)""")
    await async_wait_until(lambda: queue.depth() == 6, message="the poll sees the other instance's rows")
    with recorded_statements(db) as records:
        for i in range(4):
            assert (await queue.enqueue(make("hi", message_id=f"b{i}"))).duplicate is False
        with pytest.raises(QueueFull):
            await queue.enqueue(make("hi", message_id="b-over"))
        # a duplicate of a live key is still answered as one when the queue is full
        again = await queue.enqueue(make("hi", message_id="b0"))
        await asyncio.sleep(0)
    assert again.duplicate is True
    assert all("count(" in s for s in mine(records))
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'queued'") == 10
    assert pg.value("SELECT count(*) FROM ai_interaction_dedupe WHERE key = 'm:b-over'") == 0


async def test_the_bound_holds_without_dedupe_too(pg, queues):
    queue = queues(max_queue=2, dedupe_window_s=0)
    queue.stop_claiming()
    await queue.enqueue(make("hi"))
    await queue.enqueue(make("hi"))
    with pytest.raises(QueueFull):
        await queue.enqueue(make("hi"))
    assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 2


async def test_idle_workers_are_served_by_one_claim_and_never_more_rows_than_they_wait_for(pg, queues, db):
    producer, consumer = queues("producer"), queues("consumer")
    producer.stop_claiming()
    items = [make("hi", message_id=f"c{i}") for i in range(7)]
    for item in items:
        await producer.enqueue(item)
    with recorded_statements(db) as records:
        got = await asyncio.wait_for(asyncio.gather(*(consumer.claim() for _ in range(5))), 5)
        await asyncio.sleep(0)
    claims = [sql for task, sql in records if task == "queue-claim" and "UPDATE" in sql]
    assert len(claims) == 1, claims
    assert [g.id for g in got] == [i.id for i in items[:5]]  # oldest first
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'working'") == 5
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'queued'") == 2

    with recorded_statements(db) as records:
        await asyncio.gather(*(consumer.finish(g, "ignored") for g in got))
        assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'done'") == 5
        await asyncio.sleep(0)
    finishes = [sql for _, sql in records if "status = 'done'" in sql]
    assert len(finishes) in (1, 2), finishes  # the first outcome starts a write, the rest share the next
    assert not consumer._leases.held


async def test_an_insert_wakes_a_local_idle_worker_without_notify_and_others_by_notify(pg, queues, db):
    # long polls: only the direct ring or a NOTIFY explain a quick pickup
    local, remote = queues("local", poll_s=30), queues("remote", poll_s=30)
    await async_wait_until(lambda: remote._listener is not None and remote._listener.alive,
                           message="the remote instance listening")
    await async_wait_until(lambda: local._healthy and remote._healthy, message="first polls")
    waiting = asyncio.ensure_future(local.claim())
    await async_wait_until(lambda: local._claimer.idle_workers, message="a local worker idle")
    with recorded_statements(db) as records:
        item = make("hello", message_id="local-pickup")
        await local.enqueue(item)
        assert (await asyncio.wait_for(waiting, 5)).id == item.id
        await asyncio.sleep(0)
    assert not any("pg_notify" in sql for _, sql in records)

    remote_waiting = asyncio.ensure_future(remote.claim())
    await async_wait_until(lambda: remote._claimer.idle_workers, message="a remote worker idle")
    item = make("hello", message_id="remote-pickup")
    await local.enqueue(item)  # no local worker waits: the other instance is told
    assert (await asyncio.wait_for(remote_waiting, 5)).id == item.id


async def test_notifications_are_coalesced_while_no_local_worker_waits(pg, queues, db):
    from interactions.queue import claimer

    queue = queues()
    queue.stop_claiming()
    loop = asyncio.get_running_loop()
    with recorded_statements(db) as records:
        started = loop.time()
        for i in range(30):
            await queue.enqueue(make("hi", message_id=f"n{i}"))
        elapsed = loop.time() - started
        await async_wait_until(lambda: not queue._claimer.notifying, message="notifier")
        elapsed_all = loop.time() - started
        await asyncio.sleep(0)
    notifies = sum("pg_notify" in sql for _, sql in records)
    assert notifies >= 1 and notifies <= 2 + elapsed_all / claimer.NOTIFY_INTERVAL_S, (notifies, elapsed)


async def test_closing_writes_outcomes_in_flight_before_releasing(pg, queues):
    queue = queues()
    item = make("hello")
    await queue.enqueue(item)
    got = await claim(queue)
    finishing = asyncio.ensure_future(queue.finish(got, "replied"))
    await asyncio.sleep(0)  # the write has started
    queue.stop_claiming()
    await queue.aclose()
    await finishing
    row = pg.query("SELECT status, outcome FROM ai_interaction_queue")[0]
    assert tuple(row) == ("done", "replied")


async def test_rows_claimed_but_never_handed_to_a_worker_go_back_without_an_attempt(pg, queues):
    queue = queues()
    await queue.enqueue(make("hello"))
    idle = asyncio.get_running_loop().create_future()  # a worker that waits, then never picks its row up
    queue._claimer._idle.append(idle)
    queue._claimer._hungry.set()
    await asyncio.wait_for(idle, 5)
    assert len(queue._claimer._ready) == 1 and pg.value("SELECT attempts FROM ai_interaction_queue") == 1
    queue.stop_claiming()
    await queue.aclose()
    assert tuple(pg.query("SELECT status, attempts FROM ai_interaction_queue")[0]) == ("queued", 0)


async def test_concurrent_enqueues_share_one_statement_and_dedupe_within_it(pg, queues, db):
    queue = queues()
    queue.stop_claiming()
    earlier = make("hi", message_id="seen-before")
    await queue.enqueue(earlier)
    items = [make("hi", message_id=f"g{i}") for i in range(20)]
    items += [make("hi", message_id="g3"), make("hi", message_id="seen-before")]
    with recorded_statements(db) as records:
        results = await asyncio.gather(*(queue.enqueue(item) for item in items))
        await asyncio.sleep(0)
    inserts = [sql for task, sql in records if task == "queue-enqueue" and "INSERT" in sql]
    assert len(inserts) == 1, inserts  # all arrived in one turn of the loop: one statement, one commit
    assert [(r.interaction_id, r.duplicate) for r in results[:20]] == [(i.id, False) for i in items[:20]]
    assert (results[20].interaction_id, results[20].duplicate) == (items[3].id, True)
    assert (results[21].interaction_id, results[21].duplicate) == (earlier.id, True)
    assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 21
    assert pg.value("SELECT count(*) FROM ai_interaction_dedupe") == 21


async def test_concurrent_enqueues_without_dedupe_share_one_statement(pg, queues, db):
    queue = queues(dedupe_window_s=0)
    queue.stop_claiming()
    items = [make("same") for _ in range(5)]
    with recorded_statements(db) as records:
        results = await asyncio.gather(*(queue.enqueue(item) for item in items))
        await asyncio.sleep(0)
    assert len([sql for task, sql in records if task == "queue-enqueue" and "INSERT" in sql]) == 1
    assert [r.interaction_id for r in results] == [i.id for i in items] and not any(r.duplicate for r in results)
    restored = await asyncio.wait_for(asyncio.gather(*(queues("reader").claim() for _ in range(1))), 5)
    assert restored[0].request == items[0].request


async def test_a_failed_group_insert_refuses_every_request_in_it(pg, queues, db):
    queue = queues()
    queue.stop_claiming()
    await queue.enqueue(make("hi", message_id="warm"))  # first poll and pool are up
    pg.query("ALTER TABLE ai_interaction_queue ADD CONSTRAINT no_more CHECK (request_id <> 'rid-1') NOT VALID")
    results = await asyncio.gather(*(queue.enqueue(make("hi", message_id=f"f{i}")) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert pg.value("SELECT count(*) FROM ai_interaction_dedupe WHERE key LIKE 'm:f%'") == 0


async def test_workers_waiting_together_are_each_served_as_rows_arrive(pg, queues):
    queue = queues(poll_s=30)  # no poll rescues a lost wake-up: only the claimer's own bookkeeping
    await async_wait_until(lambda: queue._healthy, message="first poll")
    claims = [asyncio.ensure_future(queue.claim()) for _ in range(3)]
    await async_wait_until(lambda: queue._claimer.idle_workers == 3, message="three idle workers")
    # two rows from another instance, and two rings: the claimer finds both, and looks again at once,
    # before the two workers woken for them have run
    await queues("other").enqueue(make("hi", message_id="first"))
    await queues("other2").enqueue(make("hi", message_id="second"))
    queue._bell.ring()
    queue._bell.ring()
    await async_wait_until(lambda: sum(c.done() for c in claims) == 2, timeout=5, message="two served")
    last = make("hi", message_id="third")
    await queue.enqueue(last)
    await async_wait_until(lambda: all(c.done() for c in claims), timeout=5, message="the third worker served")
    assert last.id in {c.result().id for c in claims}
