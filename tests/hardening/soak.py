"""The soak (`make soak`): SOAK_SECONDS (default 600) of mixed traffic with faults injected, on real
`python app.py` processes, ending with the books balanced and the memory flat.

Subjects:
- M, a memory-mode process (its RSS is the one watched), with WaddleAI as the fallback provider;
- P1 and P2, two PostgreSQL-mode processes sharing one schema.

Traffic (threads, for the whole run): chat messages of every kind to M and to P1/P2 (greetings,
questions, mentions, chatter, commands, events, communities, retried posts that must be answered
as duplicates), honouring 429/503 Retry-After like a router; OpenAI API calls, streamed or not; bad
bodies (every answer must be a 4xx); admin reads and writes.

Faults, one phase after the other (each a fraction of the run): Ollama 500s, hangs past the timeout,
garbage, an {"error"} line mid-stream, slow token streams, connection refused, both providers down;
the router down for SOAK_ROUTER_DOWN_S (default 20) with ROUTER_RETRY_MAX_S 30, answering 4xx,
answering slowly, one request hanging; all the while PostgreSQL backends are terminated every few
seconds, and P2 is SIGKILLed at half time and restarted.

At the end: faults off, traffic stopped, everything drained. M: accepted (its /metrics) == sum of its
outcomes == the 202s the clients saw, every `replied`/`fallback` delivered exactly once, RSS at
start/middle/end. P1/P2: every accepted row done with an outcome, every replied/fallback delivered.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import httpx

from tests.hardening.processes import Traffic, launch, rss_kib
from tests.hardening.support import Ledger, env_float, read_books
from tests.server_thread import ServerThread
from tests.storage.processes import start_instances
from tests.support import interaction_body
from tests.waiting import wait_until

KEY = "soak-key-Kk00"  # every key ring (router, OpenAI, admin)
AUTH = {"Authorization": f"Bearer {KEY}"}
USERS = [f"viewer-{i}" for i in range(3000)]
CHANNELS = [f"twitch:channel:{i}" for i in range(60)]
TRIGGERING = ["hello there!", "what is this game?", "hey @waddlebot", "gm chat", "bye all, gtg", "o7", "!lurk",
              "how long have you been streaming?", "waddlebot are you real?", "good evening"]
CHATTER = ["lol", "this is super", "they did it", "pog", "which one", "KEKW", "2007 called", "nice play", "!so x"]


class FakeSwitch:
    """Stop and start a fake LLM's server on the same port (connection refused while stopped)."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.server = ServerThread(fake).start()
        fake.url = self.server.url
        self.port = self.server.port

    def down(self) -> None:
        self.fake.release()
        self.server.stop()

    def up(self) -> None:
        self.fake._release, self.fake._loop = None, None  # a new loop: new release event
        self.server = ServerThread(self.fake, port=self.port).start()

    def close(self) -> None:
        self.fake.release()
        self.server.stop()


class Bodies:
    """The n-th interaction body of a mixed stream; remembers some to post again (router retries)."""

    def __init__(self, seed: int, communities: list[int]) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.communities = communities
        self.sent: list[dict[str, Any]] = []

    def __call__(self, n: int) -> dict[str, Any]:
        with self.lock:
            rng = self.rng
            kind = rng.random()
            if kind < 0.05 and self.sent:
                return dict(rng.choice(self.sent[-500:]))  # the router posts a message again
            user, channel = rng.choice(USERS), rng.choice(CHANNELS)
            fields: dict[str, Any] = {"user_id": user, "username": user, "display_name": user.title(),
                                      "entity_id": channel, "message_id": f"m-{n}-{rng.getrandbits(40):x}"}
            if kind < 0.50:
                text = rng.choice(TRIGGERING)
            elif kind < 0.80:
                text = rng.choice(CHATTER)
            elif kind < 0.88:
                text, fields["message_type"] = rng.choice(["", "thanks for the raid!"]), rng.choice(["raid", "subscription"])
            else:
                text, fields["community_id"] = rng.choice(TRIGGERING), rng.choice(self.communities)
            body = interaction_body(text, **fields)
            self.sent.append(body)
            return body


class Side:
    """A background loop (OpenAI calls, bad bodies, admin calls), with its counted answers."""

    def __init__(self, name: str, step: Callable[[httpx.Client, random.Random], int], pause_s: float) -> None:
        self.name, self.step, self.pause_s = name, step, pause_s
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"soak-{name}", daemon=True)

    def start(self) -> "Side":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        rng = random.Random(hash(self.name) & 0xFFFF)
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    self.statuses[self.step(client, rng)] += 1
                except httpx.TransportError as exc:
                    self.errors[type(exc).__name__] += 1
                except AssertionError as exc:
                    self.problems.append(str(exc)[:300])
                self._stop.wait(self.pause_s)


def openai_step(url: str) -> Callable[[httpx.Client, random.Random], int]:
    def step(client: httpx.Client, rng: random.Random) -> int:
        body = {"model": rng.choice(["llama3.2", "", "ollama/llama3.2", "unknown-model"]),
                "messages": [{"role": "user", "content": rng.choice(TRIGGERING)}], "stream": rng.random() < 0.5}
        if body["stream"]:
            with client.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH) as response:
                raw = b"".join(response.iter_bytes())
            if response.status_code == 200:
                frames = raw[:-2].split(b"\n\n")
                assert raw.endswith(b"\n\n") and all(f.startswith(b"data: ") for f in frames), raw[-200:]
                last = frames[-1][6:]
                assert last == b"[DONE]" or "error" in json.loads(last), last[:200]
        else:
            response = client.post(url + "/v1/chat/completions", json=body, headers=AUTH)
            raw = response.content
        assert response.status_code in (200, 404, 503), (response.status_code, raw[:300])
        return response.status_code
    return step


BAD_BODIES = [b"{", b"[]", b'{"session_id": 5}', b"\xff\xfe", b'{"metadata": {"x": NaN}}', b'"text"',
              json.dumps(interaction_body("hi", community_id=2 ** 40)).encode(),
              json.dumps(interaction_body("hi \u0000")).encode(), b"{" * 3000 + b"}" * 3000]


def bad_input_step(url: str) -> Callable[[httpx.Client, random.Random], int]:
    def step(client: httpx.Client, rng: random.Random) -> int:
        response = client.post(url + "/api/v1/ai/interaction", content=rng.choice(BAD_BODIES),
                               headers={**AUTH, "Content-Type": rng.choice(["application/json", "text/plain"])})
        assert response.status_code in (400, 415), (response.status_code, response.text[:200])
        assert "Traceback" not in response.text
        return response.status_code
    return step


def admin_step(url: str, communities: list[int]) -> Callable[[httpx.Client, random.Random], int]:
    def step(client: httpx.Client, rng: random.Random) -> int:
        community = rng.choice(communities)
        if rng.random() < 0.3:
            response = client.put(f"{url}/api/v1/ai/config?community_id={community}", headers=AUTH,
                                  json={"temperature": round(rng.random(), 2), "api_key": f"sk-{rng.getrandbits(32)}"})
        else:
            response = client.get(f"{url}/api/v1/ai/usage?community_id={community}", headers=AUTH)
        assert response.status_code in (200, 503), (response.status_code, response.text[:200])
        return response.status_code
    return step


class Faults:
    """The fault schedule: `phases` run one after the other, each for its share of the run."""

    def __init__(self, ollama: FakeSwitch, openai: Any, router: Any, down_s: float) -> None:
        self.ollama, self.openai, self.router, self.down_s = ollama, openai, router, down_s
        self.log: list[tuple[float, str]] = []

    def clear(self) -> None:
        fake = self.ollama.fake
        fake.fail_status = fake.fail_times = None
        fake.hang, fake.garbage, fake.token_delay, fake.error_midstream_after = False, False, 0.0, None
        self.openai.fail_status = None
        self.router.fail_status = self.router.fail_times = None
        self.router.delay, self.router.hang, self.router.hang_if = 0.0, False, None
        if self.router.down:
            self.router.down = False
        if not self.ollama.server._thread or not self.ollama.server._thread.is_alive():
            self.ollama.up()

    def phases(self) -> list[tuple[str, Callable[[], None]]]:
        fake = self.ollama.fake
        return [
            ("normal", lambda: None),
            ("ollama_500", lambda: setattr(fake, "fail_status", 500)),
            ("ollama_hang_past_timeout", lambda: setattr(fake, "hang", True)),
            ("ollama_garbage", lambda: setattr(fake, "garbage", True)),
            ("ollama_error_mid_stream", lambda: setattr(fake, "error_midstream_after", 2)),
            ("ollama_slow_tokens", lambda: setattr(fake, "token_delay", 0.3)),
            ("ollama_connection_refused", self.ollama.down),
            ("both_providers_down", lambda: (setattr(fake, "fail_status", 503), setattr(self.openai, "fail_status", 500))),
            ("router_4xx", lambda: setattr(self.router, "fail_status", 400)),
            ("router_slow", lambda: setattr(self.router, "delay", 1.0)),
            ("router_one_request_hangs", lambda: setattr(self.router, "hang_if", _first_of_a_user())),
            ("normal_again", lambda: None),
        ]

    def run(self, seconds: float, stop: threading.Event, started: float) -> None:
        phases = self.phases()
        share = max(2.0, (seconds - self.down_s) / len(phases))
        for name, apply in phases[:6]:
            self._phase(name, apply, share, stop, started)
        self._phase("router_down", lambda: setattr(self.router, "down", True), self.down_s, stop, started)
        for name, apply in phases[6:]:
            self._phase(name, apply, share, stop, started)

    def _phase(self, name: str, apply: Callable[[], None], length: float, stop: threading.Event,
               started: float) -> None:
        if stop.is_set():
            return
        self.clear()
        self.log.append((round(time.monotonic() - started, 1), name))
        apply()
        stop.wait(length)
        self.clear()


def _first_of_a_user() -> Callable[[dict[str, Any]], bool]:
    victim = random.choice(USERS)
    return lambda attempt: (attempt.get("body") or {}).get("user_id") == victim


def run_soak(seconds: float, tmp_path: Path, pg: Any, fake_ollama: Any, fake_openai: Any,
             fake_router: Any) -> dict[str, Any]:
    down_s = env_float("SOAK_ROUTER_DOWN_S", 20)
    ollama = FakeSwitch(fake_ollama)
    fake_ollama.delay = fake_openai.delay = 0.05
    fake_openai.reply = "Hello from the fallback provider!"
    communities = [11, 12, 13]
    common = {"ROUTER_RETRY_MAX_S": "30", "REQUEST_TIMEOUT": "2", "BREAKER_RESET_S": "5",
              "USER_COOLDOWN_S": "5", "CHANNEL_MAX_REPLIES_PER_MIN": "120", "LOG_LEVEL": "WARNING",
              "ROUTER_SERVICE_KEY": KEY, "VALID_API_KEYS": KEY, "ADMIN_API_KEYS": KEY,
              "COMPLETIONS_RATE_PER_MIN": "0", "HEALTH_CHECK_INTERVAL_S": "5",
              "WADDLEAI_BASE_URL": fake_openai.url, "WADDLEAI_API_KEY": "sk-soak-waddle",
              "FALLBACK_PROVIDER": "waddleai", "CONFIG_ENCRYPTION_KEY": "dGhpcy1pcy1hLXNvYWstdGVzdC1rZXktMzItYnl0ZXM="}
    fake_openai.api_key = "sk-soak-waddle"
    memory = launch(tmp_path, fake_ollama, fake_router, name="soak-memory", WORKER_COUNT="32",
                    SHUTDOWN_GRACE_S="30", **common)
    pg_env = {**common, "WORKER_COUNT": "8", "QUEUE_LEASE_S": "3", "SHUTDOWN_GRACE_S": "10"}
    p1, p2 = start_instances(2, pg, fake_ollama, fake_router, tmp_path, **pg_env)
    instances = [p1, p2]
    traffic_m = Traffic([memory.url], Bodies(1, communities), threads=3, pause_s=0.03, retry_refused=True,
                        headers=AUTH)
    traffic_p = Traffic([p1.url, p2.url], Bodies(2, communities), threads=2, pause_s=0.08, retry_refused=True,
                        headers=AUTH)
    sides = [Side("openai", openai_step(memory.url), 0.5), Side("bad_input", bad_input_step(memory.url), 0.2),
             Side("admin", admin_step(memory.url, communities), 1.0)]
    faults = Faults(ollama, fake_openai, fake_router, down_s)
    stop = threading.Event()
    rss: list[tuple[float, int]] = []
    figures: dict[str, Any] = {"seconds": seconds, "router_down_s": down_s}
    terminated = [0]
    try:
        wait_until(memory.ready, timeout=30)
        ledger = Ledger(memory.http)
        started = time.monotonic()
        traffic_m.start(), traffic_p.start()
        for side in sides:
            side.start()
        schedule = threading.Thread(target=faults.run, args=(seconds, stop, started), daemon=True)
        schedule.start()
        killed = False
        while time.monotonic() - started < seconds:
            elapsed = time.monotonic() - started
            rss.append((round(elapsed, 1), rss_kib(memory.proc.pid)))
            terminated[0] += pg.terminate()  # PostgreSQL drops every connection of P1/P2
            if not killed and elapsed >= seconds / 2:
                killed = True
                p2.proc.kill()  # SIGKILL mid-run; restarted on the same schema
                p2.proc.wait(10)
                p2.close()
                (p2,) = start_instances(1, pg, fake_ollama, fake_router, tmp_path, **pg_env)
                instances.append(p2)
                traffic_p.urls[1] = p2.url
            stop.wait(5)
        stop.set()
        schedule.join(60)
        traffic_m.stop(), traffic_p.stop()
        for side in sides:
            side.stop()
        faults.clear()
        accepted_p = set(traffic_p.acked) | set(traffic_p.retry_unanswered(p1.url))
        # Drain: M balances its books; P1/P2 finish every row.
        client_202 = traffic_m.accepted + len(traffic_m.retry_unanswered(memory.url))
        books = ledger.settled(client_202, timeout=120)
        rss.append((round(time.monotonic() - started, 1), rss_kib(memory.proc.pid)))
        wait_until(lambda: pg.value("SELECT count(*) FROM ai_interaction_queue WHERE status <> 'done'") == 0,
                   timeout=120, interval=0.5, message="every PostgreSQL row done")
        status = memory.http.get("/api/v1/ai/status").json()["data"]
        assert status["queue_depth"] == 0 and status["inflight"] == 0, status
        final_books = read_books(memory.http)
        exit_codes = {"memory": memory.sigterm(timeout=60), "p1": p1.sigterm(timeout=60), "p2": p2.sigterm(timeout=60)}
    finally:
        stop.set()
        traffic_m.stop(), traffic_p.stop()
        for side in sides:
            side.stop()
        for instance in [memory, *instances]:
            instance.close()
        ollama.close()

    # --- the figures and the checks --------------------------------------------------------------
    errors: Counter[str] = Counter()
    crashes = []
    for instance in [memory, *instances]:
        for line in instance.output().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                crashes.append(line[:300])  # every line is JSON; anything else is a crash's output
                continue
            if record.get("level") in ("error", "critical"):
                errors[record.get("event", "?")] += 1
            if "exception" in record or record.get("event") in ("interaction crashed", "unhandled error"):
                crashes.append(line[:500])
    delivered = Counter(r["headers"]["idempotency-key"] for r in fake_router.replies)
    m_ids = set(traffic_m.acked)
    m_delivered = {k: v for k, v in delivered.items() if k in m_ids}
    answered = books.outcomes["replied"] + books.outcomes["fallback"]
    rows = {r[0]: r[1] for r in pg.query("SELECT outcome, count(*) FROM ai_interaction_queue GROUP BY 1")}
    p_answered_ids = {r[0] for r in pg.query(
        "SELECT id::text FROM ai_interaction_queue WHERE outcome IN ('replied', 'fallback')")}
    p_ids = {r[0] for r in pg.query("SELECT id::text FROM ai_interaction_queue")}
    middle = rss[len(rss) // 2][1]
    figures.update({
        "memory": {
            "accepted_seen_by_clients": client_202, "accepted_metric": books.accepted,
            "outcomes": dict(books.outcomes), "sum_of_outcomes": books.finished,
            "router_posts": dict(books.router), "duplicates_acknowledged": traffic_m.duplicates,
            "refused_then_retried": {str(k): v for k, v in traffic_m.statuses.items() if k != 202},
            "replies_delivered": len(m_delivered), "delivered_twice": sum(v > 1 for v in m_delivered.values()),
            "exit_code": exit_codes["memory"],
            "rss_kib": {"start": rss[0][1], "middle": middle, "end": rss[-1][1], "max": max(r for _, r in rss)},
            "rss_kib_every_minute": [(t, r) for t, r in rss if int(t) % 60 < 5] + [rss[-1]],
            "accepted_total_at_end": final_books.accepted,
        },
        "postgresql": {
            "accepted": len(accepted_p), "rows": len(p_ids), "outcomes": rows,
            "rows_whose_202_was_cut_off": len(p_ids - accepted_p),
            "answered_rows_delivered": len(p_answered_ids & set(delivered)),
            "answered_rows": len(p_answered_ids), "delivered_twice_same_key": sum(
                delivered[k] > 1 for k in p_answered_ids), "backends_terminated": terminated[0],
            "sigkill_restarts": 1, "exit_codes": [exit_codes["p1"], exit_codes["p2"]],
        },
        "side_traffic": {s.name: {"statuses": dict(s.statuses), "transport_errors": dict(s.errors),
                                  "problems": s.problems[:5]} for s in sides},
        "fault_phases": faults.log,
        "error_log_lines": dict(errors),
    })
    # Nothing accepted is lost; every outcome exactly once.
    assert books.accepted == client_202 == books.finished, figures["memory"]
    assert len(m_delivered) == answered and all(v == 1 for v in m_delivered.values()), figures["memory"]
    assert set(m_delivered) <= m_ids
    assert exit_codes == {"memory": 0, "p1": 0, "p2": 0}, exit_codes
    assert accepted_p <= p_ids, "a PostgreSQL-mode acceptance without a row"
    assert p_answered_ids <= set(delivered), "a replied/fallback row never reached the router"
    assert None not in rows, rows
    for side in sides:
        assert not side.problems, (side.name, side.problems[:3])
    assert not crashes, crashes[:5]
    return figures
