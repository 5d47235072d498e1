"""The app on PostgreSQL, in-process: ACK after commit, shared dedupe/config/erase/usage, outages."""

from __future__ import annotations

import threading

import httpx
import pytest

from web import admin
from storage import db as db_module
from interactions.queue import claimer, enqueue_batches, outcome_batches
from interactions.queue import postgres as pg_queue
from storage import pg_config
from tests.web.admin_support import ADMIN_KEY, AUTH, FERNET_KEY, recorded_logs
from tests.storage.conftest import pg_settings, wait_ready
from tests.storage.tcp_proxy import TcpProxy
from tests.support import interaction_body, running_app
from tests.waiting import wait_until


@pytest.fixture
def app(pg, fake_ollama, fake_router):
    with running_app(pg_settings(pg, fake_ollama, fake_router, admin_api_keys=ADMIN_KEY)) as handle:
        wait_ready(handle)
        yield handle


def interaction_id(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    return response.json()["data"]["interaction_id"]


def test_the_ack_comes_after_the_commit_and_the_reply_is_recorded(app, pg, fake_router):
    fake_router.hang = True  # nothing finishes before we look
    iid = interaction_id(app.post_interaction(interaction_body("hello there", community_id=11)))
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE id = $1", iid) == 1
    fake_router.hang = False
    reply = fake_router.wait_for_replies(1)[0]
    assert reply["headers"]["idempotency-key"] == iid
    wait_until(lambda: pg.value("SELECT outcome FROM ai_interaction_queue WHERE id = $1", iid) == "replied")
    assert pg.value("SELECT count(*) FROM ai_conversation_context WHERE user_id = 'user-42'") == 1
    assert pg.value("SELECT requests FROM ai_usage WHERE community_id = 11") == 1
    status = app.http.get("/api/v1/ai/status").json()["data"]
    assert status["durable"] is True


def test_two_instances_share_dedupe_config_context_and_usage(pg, fake_ollama, fake_router):
    settings = pg_settings(pg, fake_ollama, fake_router, admin_api_keys=ADMIN_KEY, config_cache_ttl_s=0.3)
    with running_app(settings) as a, running_app(settings) as b:
        wait_ready(a), wait_ready(b)
        body = interaction_body("hello both")
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda h=h: answers.append(h.post_interaction(body))) for h in (a, b) * 3]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert sorted(r.json()["data"]["duplicate"] for r in answers) == [False] + [True] * 5
        assert len({interaction_id(r) for r in answers}) == 1
        fake_router.wait_for_replies(1)

        b.http.get("/api/v1/ai/config?community_id=21", headers=AUTH)  # cached on b now
        put = a.http.put("/api/v1/ai/config?community_id=21", headers=AUTH, json={"model": "shared-model"})
        assert put.json()["data"]["persisted"] is True
        wait_until(lambda: b.http.get("/api/v1/ai/config?community_id=21", headers=AUTH)
                   .json()["data"]["effective"]["model"] == "shared-model", timeout=5)
        b.post_interaction(interaction_body("hello again", community_id=21))
        fake_router.wait_for_replies(2)
        assert fake_ollama.last_body["model"] == "shared-model"
        history = [m["role"] for m in fake_ollama.last_body["messages"]]
        assert history == ["system", "user", "assistant", "user"]  # a's exchange, read by b

        usage = a.http.get("/api/v1/ai/usage", headers=AUTH).json()["data"]
        assert usage["persisted"] is True and usage["totals"]["requests"] == 2


def test_erase_removes_context_and_waiting_rows_across_instances(app, pg, fake_ollama, fake_router):
    app.post_interaction(interaction_body("hello", user_id="erase-me"))
    fake_router.wait_for_replies(1)
    app.runtime.queue.stop_claiming()  # from now on, rows wait
    for _ in range(3):
        app.post_interaction(interaction_body("hello again", user_id="erase-me"))
    app.post_interaction(interaction_body("hello", user_id="other"))
    response = app.http.delete("/api/v1/ai/context/twitch/erase-me", headers=AUTH).json()
    assert response["data"] == {"platform": "twitch", "context_rows": 1, "queued_rows": 3, "persisted": True}
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE user_id = 'erase-me'") == 0
    assert pg.value("SELECT count(*) FROM ai_conversation_context") == 0
    assert pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'queued'") == 1


def test_nothing_is_lost_while_connections_are_terminated(app, pg, fake_router):
    acked: set[str] = set()
    for i in range(60):
        body = interaction_body("hello", user_id=f"u{i}")
        if i % 10 == 5:
            assert pg.terminate() >= 1
        response = None
        for _ in range(100):  # the router retries a 503 with the same body
            response = app.post_interaction(body)
            if response.status_code == 202:
                break
            assert response.status_code == 503 and response.headers["retry-after"]
        acked.add(interaction_id(response))
    replies = fake_router.wait_for_replies(len(acked), timeout=30)
    delivered = [r["headers"]["idempotency-key"] for r in replies]
    assert set(delivered) == acked
    assert len(delivered) == len(acked)
    wait_until(lambda: pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status = 'done'") == len(acked))


def test_start_up_without_the_store_answers_503_then_resumes_on_its_own(pg, fake_ollama, fake_router):
    missing = pg.name + "_later"  # the search_path schema does not exist yet: connecting fails
    settings = pg_settings(pg, fake_ollama, fake_router, database_url=pg.dsn.replace(
        f"search_path={pg.name}", f"search_path={missing}"))
    with running_app(settings) as app:
        assert app.http.get("/health").status_code == 200
        assert app.http.get("/ready").status_code == 503
        refused = app.post_interaction(interaction_body("hello"))
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "store_unavailable"
        pg.query(f"CREATE SCHEMA {missing}")
        try:
            wait_ready(app, timeout=20)
            interaction_id(app.post_interaction(interaction_body("hello")))
            fake_router.wait_for_replies(1)
        finally:
            app.http.close()
            app.server.stop()
            pg.query(f"DROP SCHEMA {missing} CASCADE")


def test_an_outage_turns_ready_503_refuses_work_and_everything_resumes(pg, fake_ollama, fake_router):
    proxy = TcpProxy("127.0.0.1", 5432).start()
    dsn = pg.dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert dsn != pg.dsn
    try:
        with running_app(pg_settings(pg, fake_ollama, fake_router, database_url=dsn, db_timeout_s=1)) as app:
            wait_ready(app)
            fake_ollama.delay = 0.3  # in flight when the store goes away
            during = interaction_id(app.post_interaction(interaction_body("hello", user_id="in-flight")))
            wait_until(lambda: fake_ollama.chat_requests, message="the LLM call")
            proxy.cut()
            wait_until(lambda: app.http.get("/ready").status_code == 503, timeout=10, message="/ready 503")
            assert app.http.get("/health").status_code == 200
            refused = app.post_interaction(interaction_body("hello", user_id="refused"))
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert fake_router.wait_for_replies(1)[0]["headers"]["idempotency-key"] == during
            proxy.restore()
            wait_ready(app)
            fake_ollama.delay = 0
            after = {interaction_id(app.post_interaction(interaction_body("hello", user_id=f"u{i}"))) for i in range(5)}
            replies = fake_router.wait_for_replies(6)
            assert {r["headers"]["idempotency-key"] for r in replies} == after | {during}
            wait_until(lambda: pg.value("SELECT outcome FROM ai_interaction_queue WHERE id = $1", during)
                       == "replied", message="the outcome written once the store is back")
    finally:
        proxy.stop()


def test_a_community_api_key_is_stored_encrypted_and_shown_only_as_set(pg, fake_ollama, fake_router):
    secret = "sk-pg-community-secret-987654321"
    settings = pg_settings(pg, fake_ollama, fake_router, admin_api_keys=ADMIN_KEY, config_encryption_key=FERNET_KEY)
    queue_modules = (pg_queue, enqueue_batches, claimer, outcome_batches)
    with recorded_logs(admin, pg_config, *queue_modules, db_module) as logs, running_app(settings) as app:
        wait_ready(app)
        answer = app.http.put("/api/v1/ai/config?community_id=4", headers=AUTH, json={"api_key": secret})
        assert answer.status_code == 200 and secret not in answer.text
        assert answer.json()["data"]["overrides"]["api_key_set"] is True
        stored = pg.value("SELECT api_key_encrypted FROM ai_module_config WHERE community_id = 4")
        assert secret not in stored and app.runtime.cipher.decrypt(stored) == secret
    assert "configuration updated" in logs.text() and secret not in logs.text()


def test_a_full_durable_queue_answers_429_and_accepts_again_once_worked_off(pg, fake_ollama, fake_router):
    with running_app(pg_settings(pg, fake_ollama, fake_router, max_queue=2)) as app:
        wait_ready(app)
        async def stop_claiming() -> None:  # on the app's loop: the queue is not thread-safe
            app.runtime.queue.stop_claiming()

        app.server.call(stop_claiming())  # from now on, rows wait
        for i in range(2):
            interaction_id(app.post_interaction(interaction_body("hello", user_id=f"q{i}")))
        full = app.post_interaction(interaction_body("hello", user_id="over"))
        assert full.status_code == 429 and full.headers["retry-after"]
        assert full.json()["error"]["code"] == "queue_full"
        assert pg.value("SELECT count(*) FROM ai_interaction_queue") == 2
        pg.query("UPDATE ai_interaction_queue SET status = 'done'")  # another instance worked them off
        interaction_id(app.post_interaction(interaction_body("hello", user_id="over")))
