"""The app with REDIS_URL: a hung Redis never fails an ACK or an interaction, /ready says so (still
200), and with Redis answering the shared state is there."""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest

from observability import metrics
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until


def refused() -> float:
    return metrics.REGISTRY.get_sample_value("ai_interactions_total", {"outcome": "rate_limited", "trigger": "greeting"})


class SilentServer:
    """Accepts TCP connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def hung_redis() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def test_a_hung_redis_never_fails_an_ack_or_an_interaction(fake_ollama, fake_router, hung_redis):
    settings = make_settings(ollama=fake_ollama, router=fake_router, redis_url=f"redis://127.0.0.1:{hung_redis.port}/0",
                             redis_timeout_s=0.1, redis_probe_s=0.1, user_cooldown_s=30)
    with running_app(settings) as app:
        answers = [app.post_interaction(interaction_body("hello there", user_id=f"viewer-{i}")) for i in range(5)]
        assert [a.status_code for a in answers] == [202] * 5
        fake_router.wait_for_replies(5, timeout=30)
        before = refused()
        repeat = app.post_interaction(interaction_body("hello again", user_id="viewer-0"))
        assert repeat.status_code == 202
        wait_until(lambda: refused() - before == 1, message="the repeat refused by the in-process cooldown")
        ready = app.http.get("/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["ready"] is True and body["redis"]["available"] is False
        assert "redis unavailable" in body["notes"][0] and "per replica" in body["notes"][0]
        assert len(fake_router.replies) == 5


def test_with_redis_answering_ready_has_no_note_and_state_is_in_redis(fake_ollama, fake_router, redis_space):
    settings = make_settings(ollama=fake_ollama, router=fake_router, redis_url=redis_space.url,
                             redis_key_prefix=redis_space.prefix, redis_timeout_s=1)
    with running_app(settings) as app:
        assert app.post_interaction(interaction_body("hello there", message_id="m-1")).status_code == 202
        fake_router.wait_for_replies(1)
        body = app.http.get("/ready").json()
        assert body["notes"] == [] and body["redis"] == {"available": True, "down_for_s": None, "error": None}
        assert "ai_redis_available 1.0" in app.http.get("/metrics").text
    kinds = {key.split(":", 1)[0] for key in redis_space.keys()}
    assert {"dd", "rl", "ctx", "ctx-user"} <= kinds


def test_with_postgresql_and_redis_limits_move_to_postgresql_while_redis_is_down(
        fake_ollama, fake_router, pg, own_redis):
    from tests.storage.conftest import pg_settings, wait_ready

    settings = pg_settings(pg, fake_ollama, fake_router, redis_url=own_redis.url, redis_timeout_s=0.5,
                           redis_probe_s=0.1, user_cooldown_s=60)
    with running_app(settings) as app:
        wait_ready(app)
        assert app.post_interaction(interaction_body("hello there", user_id="viewer-1")).status_code == 202
        fake_router.wait_for_replies(1, timeout=30)
        with own_redis.client() as client:
            assert list(client.scan_iter(match="aim:rl:*"))  # the limits were in Redis
        assert pg.value("SELECT count(*) FROM ai_rate_limits") == 0
        own_redis.stop()
        before = refused()
        assert app.post_interaction(interaction_body("hello there", user_id="viewer-2")).status_code == 202
        assert app.post_interaction(interaction_body("hello again", user_id="viewer-2")).status_code == 202
        fake_router.wait_for_replies(2, timeout=30)
        wait_until(lambda: refused() - before == 1, message="viewer-2's second message refused")
        assert pg.value("SELECT count(*) FROM ai_rate_limits") == 2  # viewer-2 and the channel, in PostgreSQL
        body = app.http.get("/ready").json()
        assert body["ready"] is True and "PostgreSQL" in body["notes"][0]
