"""Several replicas, one behaviour (§12), outside in: real `python app.py` processes sharing one
Redis (or one PostgreSQL), the loopback fake router recording every reply.

- Two replicas get one viewer's messages at the same moment (different message ids, one cooldown):
  exactly one reply, with Redis and with PostgreSQL (no Redis).
- The OpenAI API's per-key limit holds across two replicas (Redis, PostgreSQL).
- Redis killed mid-run: interactions keep being accepted and answered, /ready notes it (still 200),
  `ai_redis_available` shows it; restarted, the service uses Redis again.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service_process import start_service
from tests.storage.conftest import pg, pg_available  # noqa: F401 - fixtures
from tests.storage.processes import start_instances
from tests.support import interaction_body
from tests.waiting import wait_until

API_KEY = "sk-replicas-test"


class Replica:
    def __init__(self, http: httpx.Client, proc: subprocess.Popen) -> None:
        self.http, self.proc = http, proc

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.http.get("/metrics").text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def metric(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, tuple(sorted(labels.items()))))

    def outcomes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (name, labels), value in self.samples().items():
            if name == "ai_interactions_total":
                counts[dict(labels)["outcome"]] += int(value)
        return +counts

    def ready(self) -> dict[str, Any]:
        response = self.http.get("/ready")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def replicas(fake_ollama, fake_router, tmp_path, request) -> Iterator[Any]:
    """start(n, backend, **env): n replicas sharing Redis ("redis", REDIS_URL in env) or PostgreSQL."""
    started: list[Replica] = []

    def start(n: int, backend: str, **env: str) -> list[Replica]:
        env = {"LOG_LEVEL": "WARNING", "CHANNEL_MAX_REPLIES_PER_MIN": "1000", **env}
        new = []
        if backend == "postgresql":
            schema = request.getfixturevalue("pg")
            for instance in start_instances(n, schema, fake_ollama, fake_router, tmp_path, **env):
                new.append(Replica(instance.http, instance.proc))
        else:
            for _ in range(n):
                proc, url = start_service("hypercorn", fake_ollama, fake_router, **env)
                new.append(Replica(httpx.Client(base_url=url, timeout=10), proc))
        started.extend(new)
        return new

    yield start
    for replica in started:
        replica.http.close()
        if replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGTERM)
            try:
                replica.proc.wait(30)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait(10)


def redis_env(url: str, prefix: str, **more: str) -> dict[str, str]:
    # a generous bound: the suite runs beside other work on two cores, and a slow call would fall back
    return {"REDIS_URL": url, "REDIS_KEY_PREFIX": prefix, "REDIS_TIMEOUT_S": "1", **more}


def post_all(pairs: list[tuple[Replica, dict[str, Any]]]) -> list[dict[str, Any]]:
    """POST every (replica, body) at the same moment; every answer must be a 202."""
    def post(pair: tuple[Replica, dict[str, Any]]) -> dict[str, Any]:
        response = pair[0].http.post("/api/v1/ai/interaction", json=pair[1])
        assert response.status_code == 202, response.text
        return response.json()["data"]

    with ThreadPoolExecutor(len(pairs)) as pool:
        return list(pool.map(post, pairs))


def settled(group: list[Replica], n: int) -> Counter[str]:
    """Wait until the replicas together gave n interactions their outcome; returns the outcomes."""
    total: Counter[str] = Counter()

    def done() -> bool:
        nonlocal total
        total = sum((r.outcomes() for r in group), Counter())
        return sum(total.values()) >= n

    wait_until(done, timeout=60, interval=0.05, message=f"{n} outcomes")
    return total


@pytest.mark.parametrize("backend", ["redis", "postgresql"])
def test_two_replicas_give_one_viewer_one_reply_per_cooldown(replicas, backend, fake_router, request):
    env = {"USER_COOLDOWN_S": "60"}
    if backend == "redis":
        space = request.getfixturevalue("redis_space")
        env = redis_env(space.url, space.prefix, **env)
    a, b = replicas(2, backend, **env)
    if backend == "redis":
        wait_until(lambda: a.ready()["redis"]["available"] and b.ready()["redis"]["available"],
                   message="both replicas on Redis")
    burst = [(a if i % 2 else b, interaction_body("hello there", user_id="viewer-1", message_id=f"m-{i}"))
             for i in range(12)]
    acked = post_all(burst)
    assert not any(data.get("duplicate") for data in acked)
    outcomes = settled([a, b], 12)
    assert outcomes == Counter({"replied": 1, "rate_limited": 11})
    replies = fake_router.wait_for_replies(1)
    assert len(replies) == 1 and replies[0]["body"]["user_id"] == "viewer-1"
    # another viewer in the same channel is not held back by that cooldown
    post_all([(b, interaction_body("hello there", user_id="viewer-2"))])
    assert settled([a, b], 13)["replied"] == 2
    assert len(fake_router.wait_for_replies(2)) == 2


@pytest.mark.parametrize("backend", ["redis", "postgresql"])
def test_the_per_key_limit_of_the_openai_api_holds_across_two_replicas(replicas, backend, request):
    env = {"VALID_API_KEYS": API_KEY, "COMPLETIONS_RATE_PER_MIN": "4"}
    if backend == "redis":
        space = request.getfixturevalue("redis_space")
        env = redis_env(space.url, space.prefix, **env)
    a, b = replicas(2, backend, **env)
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def ask(replica: Replica) -> int:
        return replica.http.post("/v1/chat/completions", json=body, headers=headers).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = Counter(pool.map(ask, [a if i % 2 else b for i in range(10)]))
    assert statuses == Counter({200: 4, 429: 6})


def test_redis_killed_mid_run_the_service_goes_on_and_comes_back_to_it(replicas, own_redis, fake_router):
    (service,) = replicas(1, "redis", **redis_env(own_redis.url, "aim:", REDIS_TIMEOUT_S="0.2", REDIS_PROBE_S="0.2"))
    wait_until(lambda: service.ready()["redis"]["available"], message="on Redis")
    assert service.ready()["notes"] == []

    def send(n: int, tag: str) -> list[dict[str, Any]]:
        return post_all([(service, interaction_body("hello there", user_id=f"{tag}-{i}", message_id=f"{tag}-{i}"))
                         for i in range(n)])

    def redis_keys(kind: str) -> list[bytes]:
        with own_redis.client() as client:
            return list(client.scan_iter(match=f"aim:{kind}:*"))

    send(5, "before")
    fake_router.wait_for_replies(5, timeout=30)
    assert len(redis_keys("dd")) == 5 and redis_keys("rl")

    own_redis.stop()  # mid-run: the process and its data are gone
    during = send(5, "during")
    assert not any(data.get("duplicate") for data in during)
    fake_router.wait_for_replies(10, timeout=30)  # accepted and answered all the same
    ready = service.ready()  # still 200
    assert ready["ready"] is True and ready["redis"]["available"] is False and ready["redis"]["error"]
    assert len(ready["notes"]) == 1 and "redis unavailable" in ready["notes"][0]
    assert service.metric("ai_redis_available") == 0
    assert service.metric("ai_redis_fallbacks_total", use="dedupe") >= 5
    assert service.metric("ai_redis_fallbacks_total", use="rate_limit") >= 5
    retry = post_all([(service, interaction_body("hello there", user_id="during-0", message_id="during-0"))])
    assert retry[0]["duplicate"] is True and retry[0]["interaction_id"] == during[0]["interaction_id"]

    own_redis.start()  # the same port, empty
    wait_until(lambda: service.ready()["redis"]["available"], timeout=30, message="back on Redis")
    assert service.ready()["notes"] == [] and service.metric("ai_redis_available") == 1
    send(5, "after")
    fake_router.wait_for_replies(15, timeout=30)
    assert len(redis_keys("dd")) == 5 and redis_keys("rl")  # the new interactions' state is in Redis again
    assert sum(service.outcomes().values()) == 16 and service.outcomes()["replied"] == 15
