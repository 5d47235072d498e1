"""The durable reply outbox (§6) in PostgreSQL mode, in-process: the reply waits in its row, a
stopped instance leaves its undelivered replies to the next, a full outbox parks the overflow in
the store. The kill -9 takeover by another process: tests/storage/test_pg_processes.py."""

from __future__ import annotations

import json
from collections import Counter

from observability.metrics import REGISTRY
from tests.storage.conftest import pg_settings, wait_ready
from tests.support import interaction_body, running_app
from tests.waiting import wait_until


def post(app, user: str) -> str:
    response = app.post_interaction(interaction_body("hello there", user_id=user))
    assert response.status_code == 202, response.text
    return response.json()["data"]["interaction_id"]


def rows(pg, status: str) -> int:
    return pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = $1", status)


def test_a_reply_waits_in_its_row_until_the_router_takes_it(pg, fake_ollama, fake_router):
    fake_router.fail_status = 503
    settings = pg_settings(pg, fake_ollama, fake_router, router_retry_max_s=30)
    with running_app(settings) as app:
        wait_ready(app)
        iid = post(app, "patient")
        wait_until(lambda: rows(pg, "sending") == 1, message="the reply handed to the outbox")
        [row] = pg.query("SELECT reply::text, outcome, lease_owner, payload IS NOT NULL AS kept"
                         " FROM ai_interaction_queue WHERE id = $1", iid)
        stored = json.loads(row["reply"])
        assert stored["body"]["interaction_id"] == iid and stored["outcome"] == "replied"
        assert stored["trigger"] == "greeting" and stored["exchange"][1]
        assert row["outcome"] is None and row["lease_owner"] and row["kept"]
        wait_until(lambda: len(fake_router.attempts) >= 2, message="a retry")
        assert pg.value("SELECT count(*) FROM ai_conversation_context") == 0  # not delivered: not history
        assert app.http.get("/api/v1/ai/status").json()["data"]["outbox_depth"] == 1
        fake_router.fail_status = None
        wait_until(lambda: pg.value("SELECT outcome FROM ai_interaction_queue WHERE id = $1", iid) == "replied",
                   message="the outcome written")
        [done] = pg.query("SELECT status, reply, payload, lease_until FROM ai_interaction_queue WHERE id = $1", iid)
        assert (done["status"], done["reply"], done["payload"], done["lease_until"]) == ("done", None, None, None)
        assert pg.value("SELECT count(*) FROM ai_conversation_context") == 1
        assert len(fake_router.replies_for(iid)) == 1


def test_a_stopping_instance_leaves_its_undelivered_replies_to_the_next(pg, fake_ollama, fake_router):
    fake_router.fail_status = 503
    # A long lease: only the release at shutdown explains a quick pickup by the next instance.
    settings = pg_settings(pg, fake_ollama, fake_router, router_retry_max_s=60, shutdown_grace_s=0.3,
                           queue_lease_s=600)
    with running_app(settings) as leaving:
        wait_ready(leaving)
        acked = [post(leaving, f"viewer-{n}") for n in range(3)]
        wait_until(lambda: rows(pg, "sending") == 3, message="three replies in the outbox")
    assert rows(pg, "sending") == 3
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'sending'"
                    " AND lease_owner IS NULL AND outcome IS NULL") == 3
    assert fake_router.replies == []
    fake_router.fail_status = None
    with running_app(settings) as heir:
        replies = fake_router.wait_for_replies(3, timeout=15)
        wait_until(lambda: rows(pg, "done") == 3, message="three rows done")
        assert heir.http.get("/api/v1/ai/status").json()["data"]["outbox_depth"] == 0
    assert Counter(r["headers"]["idempotency-key"] for r in replies) == Counter({iid: 1 for iid in acked})
    assert len(fake_ollama.chat_requests) == 3  # taken over as replies: never generated again
    assert {r[0] for r in pg.query("SELECT outcome FROM ai_interaction_queue")} == {"replied"}


def test_a_full_outbox_parks_the_overflow_in_the_store_for_any_instance_with_room(pg, fake_ollama, fake_router):
    fake_router.hang = True
    settings = pg_settings(pg, fake_ollama, fake_router, outbox_max=1, router_timeout_s=30, router_retry_max_s=30)
    overflow = REGISTRY.get_sample_value("ai_outbox_overflow_total") or 0.0
    with running_app(settings) as app:
        wait_ready(app)
        first = post(app, "first")
        wait_until(lambda: len(fake_router.attempts) == 1, message="the first reply's attempt hanging")
        second = post(app, "second")
        wait_until(lambda: pg.value("SELECT count(*) FROM ai_interaction_queue WHERE id = $1 AND status = 'sending'"
                                    " AND lease_owner IS NULL", second) == 1, message="the second one parked")
        assert REGISTRY.get_sample_value("ai_outbox_overflow_total") == overflow + 1
        assert app.http.get("/api/v1/ai/status").json()["data"]["outbox_depth"] == 1
        fake_router.hang = False
        replies = fake_router.wait_for_replies(2, timeout=15)
        wait_until(lambda: rows(pg, "done") == 2, message="both rows done")
    assert Counter(r["headers"]["idempotency-key"] for r in replies) == Counter({first: 1, second: 1})
    assert {r[0] for r in pg.query("SELECT outcome FROM ai_interaction_queue")} == {"replied"}
