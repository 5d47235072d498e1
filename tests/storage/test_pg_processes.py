"""Several real `python app.py` processes on one database: exactly once, takeover, clean shutdown."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.storage.processes import start_instances
from tests.support import interaction_body
from tests.waiting import wait_until


@pytest.fixture
def instances(pg, fake_ollama, fake_router, tmp_path):
    started = []

    def start(n: int = 1, **env: str):
        new = start_instances(n, pg, fake_ollama, fake_router, tmp_path, **env)
        started.extend(new)
        return new

    yield start
    for instance in started:
        instance.close()


def post(instance, **fields) -> str:
    response = instance.http.post("/api/v1/ai/interaction", json=interaction_body("hello there", **fields))
    assert response.status_code == 202, response.text
    return response.json()["data"]["interaction_id"]


def test_two_instances_answer_200_interactions_exactly_once_between_them(instances, pg, fake_ollama, fake_router):
    fake_ollama.delay = 0.02
    a, b = instances(2, LOG_LEVEL="WARNING")
    with ThreadPoolExecutor(8) as pool:  # a router posts concurrently, to both instances
        acked = list(pool.map(lambda i: post(a if i % 2 else b, user_id=f"viewer-{i}"), range(200)))
    assert len(set(acked)) == 200
    replies = fake_router.wait_for_replies(200, timeout=60)
    delivered = Counter(r["headers"]["idempotency-key"] for r in replies)
    assert set(delivered) == set(acked)
    assert max(delivered.values()) == 1, [k for k, v in delivered.items() if v > 1]
    assert all(r["body"]["interaction_id"] == r["headers"]["idempotency-key"] for r in replies)
    rows = pg.query("SELECT lease_owner, count(*) FROM ai_interaction_queue WHERE status = 'done' GROUP BY 1")
    assert sum(r[1] for r in rows) == 200
    assert len(rows) == 2, "both instances should have taken a share of the work"
    assert a.sigterm() == 0 and b.sigterm() == 0


def test_a_killed_instances_interactions_are_finished_by_another_after_the_lease(
        instances, pg, fake_ollama, fake_router):
    fake_ollama.hang, fake_ollama.fail_times = True, 3  # the first three LLM calls never answer
    (doomed,) = instances(1, WORKER_COUNT="3", QUEUE_LEASE_S="1")
    acked = [post(doomed, user_id=f"viewer-{i}") for i in range(5)]
    wait_until(lambda: len(fake_ollama.chat_requests) == 3, message="three calls in flight")
    doomed.proc.kill()  # SIGKILL mid-call: no drain, no release
    doomed.proc.wait(10)
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'working'") == 3
    instances(1, QUEUE_LEASE_S="1")
    replies = fake_router.wait_for_replies(5, timeout=30)
    delivered = Counter(r["headers"]["idempotency-key"] for r in replies)
    assert delivered == Counter({iid: 1 for iid in acked})
    assert not any(r["body"]["response_data"]["fallback"] for r in replies)
    attempts = sorted(r[0] for r in pg.query("SELECT attempts FROM ai_interaction_queue"))
    assert attempts == [1, 1, 2, 2, 2]  # three taken over after the lease, two never claimed before


def test_sigterm_leaves_unfinished_interactions_queued_for_another_instance(
        instances, pg, fake_ollama, fake_router):
    fake_ollama.hang, fake_ollama.fail_times = True, 2
    (leaving,) = instances(1, WORKER_COUNT="2", SHUTDOWN_GRACE_S="0.3", QUEUE_LEASE_S="600")
    acked = [post(leaving, user_id=f"viewer-{i}") for i in range(4)]
    wait_until(lambda: len(fake_ollama.chat_requests) == 2, message="two calls in flight")
    assert leaving.sigterm() == 0
    output = leaving.output()
    assert "interaction not processed before shutdown" not in output
    assert '"result": "failed"' not in output
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'queued'") == 4
    instances(1, QUEUE_LEASE_S="600")  # a long lease: only the release explains a quick pickup
    replies = fake_router.wait_for_replies(4, timeout=30)
    assert Counter(r["headers"]["idempotency-key"] for r in replies) == Counter({iid: 1 for iid in acked})


def test_a_killed_instances_undelivered_replies_are_delivered_once_by_another(
        instances, pg, fake_ollama, fake_router):
    """kill -9 with replies in the outbox (the router answering 503): once their lease ran out,
    another instance's outbox takes them and delivers each once; none is generated again."""
    fake_router.fail_status = 503
    env = {"QUEUE_LEASE_S": "1", "ROUTER_RETRY_MAX_S": "60"}
    (doomed,) = instances(1, **env)
    acked = [post(doomed, user_id=f"viewer-{i}") for i in range(8)]
    wait_until(lambda: pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'sending'") == 8,
               message="eight replies in the outbox")
    wait_until(lambda: {a["headers"]["idempotency-key"] for a in fake_router.attempts} == set(acked),
               message="each reply refused at least once")
    doomed.proc.kill()  # SIGKILL: no drain, no release
    doomed.proc.wait(10)
    owners = pg.query("SELECT DISTINCT lease_owner FROM ai_interaction_queue WHERE status = 'sending'")
    assert len(owners) == 1 and owners[0][0]  # still the dead instance's, until the lease runs out
    fake_router.fail_status = None
    started = time.monotonic()
    (heir,) = instances(1, **env)
    replies = fake_router.wait_for_replies(8, timeout=30)
    took = max(r["time"] for r in replies) - started
    wait_until(lambda: pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'done'") == 8,
               message="every row done")
    delivered = Counter(r["headers"]["idempotency-key"] for r in replies)
    assert delivered == Counter({iid: 1 for iid in acked})
    assert len(fake_ollama.chat_requests) == 8  # the replies were taken over, not generated again
    assert {r[0] for r in pg.query("SELECT outcome FROM ai_interaction_queue")} == {"replied"}
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE reply IS NOT NULL") == 0
    # the log writer writes its lines within 50 ms (observability/log_writer.py), so wait for them
    wait_until(lambda: heir.output().count("undelivered reply taken over") == 8,
               message="eight takeovers logged")
    assert heir.sigterm() == 0
    print(f"kill -9 with 8 replies in the outbox: another instance delivered all 8, each once, {took:.1f} s "
          "after it was started (start-up and QUEUE_LEASE_S=1 included)")
