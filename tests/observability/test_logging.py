"""Logs of a real `python app.py` process (§9): one JSON object per line, request ids end to end,
hashed users, no message text, lifecycle events once each, and no secret anywhere — not in a log
line, not in an error body — while traffic, failures and bad credentials go through it."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from observability import logs
from tests.server_thread import free_port
from tests.support import interaction_body
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
INTERACTION = "/api/v1/ai/interaction"


class Service:
    """`python app.py` with the given environment; stdout and stderr read as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")},
            "MODULE_PORT": str(self.port), "MODULE_HOST": "127.0.0.1", "LOG_LEVEL": "INFO",
            "SHUTDOWN_GRACE_S": "10", "HEALTH_CHECK_INTERVAL_S": "60", **env,
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_up(self, timeout: float = 20) -> bool:
        """True once /health answers; False if the process exited first."""
        def up() -> bool | None:
            if self.proc.poll() is not None:
                return None
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(lambda: up() is not False, timeout=timeout, message="service start or exit")
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "".join(self.stdout)

    def records(self) -> list[dict[str, Any]]:
        lines = [line for line in self.stdout if line.strip()]
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"log line is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            records.append(record)
        return records


def user_hash(user_id: str, salt: str) -> str:
    return hashlib.blake2s(user_id.encode(), key=salt.encode()[:32], digest_size=6).hexdigest()


def assert_common_fields(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert {"timestamp", "level", "module", "event"} <= record.keys(), record
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, record
        assert record["module"] == "ai_interaction_module", record


def test_real_process_logs_json_with_request_ids_and_never_a_secret(fake_ollama, fake_openai, fake_router):
    salt = "salt-Ee44ffQ"
    secrets = {
        "ROUTER_SERVICE_KEY": "rsk-inbound-Zq81xK",
        "ROUTER_API_KEY": "rak-outbound-Pw77yT",
        "WADDLEAI_API_KEY": "sk-waddle-Hh52mN",
        "VALID_API_KEYS": "sk-client-one-Aa11x,sk-client-two-Bb22y",
        "ADMIN_API_KEYS": "adm-key-Cc33ddZ",
        "CONFIG_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "USER_HASH_SALT": salt,
    }
    secret_strings = [s for value in secrets.values() for s in value.split(",")]
    fake_openai.api_key = secrets["WADDLEAI_API_KEY"]
    ollama = urlparse(fake_ollama.url)
    service = Service({
        **secrets,
        "OLLAMA_HOST": ollama.hostname, "OLLAMA_PORT": str(ollama.port),
        "WADDLEAI_BASE_URL": fake_openai.url, "FALLBACK_PROVIDER": "waddleai",
        "ROUTER_API_URL": fake_router.base_url, "ROUTER_RETRY_MAX_S": "0.3",
        "USER_COOLDOWN_S": "0", "WORKER_COUNT": "1", "BREAKER_FAILURE_THRESHOLD": "2",
        "MAX_BODY_BYTES": "2048",
    })
    responses: list[httpx.Response] = []
    user, words = "raw-user-id-55512", "pineapple-7781"
    try:
        assert service.wait_up(), service.output() + "".join(service.stderr)
        auth = {"X-Service-Key": secrets["ROUTER_SERVICE_KEY"]}
        with httpx.Client(base_url=service.url, timeout=10) as client:
            def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
                response = client.request(method, path, **kwargs)
                responses.append(response)
                return response

            def reject(method: str, path: str, **kwargs: Any) -> int:
                # A new connection each: a rejection sent before the body was read may close the
                # kept-alive connection under the next request.
                response = httpx.request(method, service.url + path, timeout=10, **kwargs)
                responses.append(response)
                return response.status_code

            def interact(text: str, request_id: str, **overrides: Any) -> str:
                body = interaction_body(text, user_id=overrides.pop("user_id", user), **overrides)
                ack = call("POST", INTERACTION, json=body, headers={**auth, "X-Request-ID": request_id})
                assert ack.status_code == 202, ack.text
                assert ack.headers["x-request-id"] == request_id
                return ack.json()["data"]["interaction_id"]

            # 1. a greeting answered by Ollama
            greeting_id = interact(f"hello there {words}", "req-log-greeting-1")
            fake_router.wait_for_replies(1)
            # 2. Ollama fails twice (its breaker opens once), WaddleAI answers
            fake_ollama.fail_status, fake_ollama.fail_times = 500, 2
            interact("hi again", "req-log-failover-1", user_id="second-user-1")
            interact("hey there", "req-log-failover-2", user_id="second-user-2")
            replies = fake_router.wait_for_replies(3)
            assert [r["body"]["response_data"]["provider"] for r in replies[1:]] == ["waddleai", "waddleai"]
            # 3. both providers down: a canned fallback
            fake_openai.fail_status = 500
            interact("hello?", "req-log-fallback-1", user_id="third-user")
            assert fake_router.wait_for_replies(4)[-1]["body"]["response_data"]["fallback"] is True
            fake_openai.fail_status = None
            # 4. the router refuses: the reply is given up, counted and logged
            fake_router.fail_status = 503
            lost_id = interact("good morning", "req-log-router-down", user_id="fourth-user")

            def router_failures() -> float:
                text = call("GET", "/metrics").text
                return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                           if s.name == "ai_router_posts_total" and s.labels["result"] == "failed")

            wait_until(lambda: router_failures() == 1, message="router failure counted")
            fake_router.fail_status = None
            # 5. bad credentials and bad requests
            assert reject("POST", INTERACTION, json=interaction_body("hello")) == 401
            assert reject("POST", INTERACTION, json=interaction_body("hello"),
                          headers={"X-Service-Key": "not-the-key"}) == 401
            assert reject("POST", INTERACTION, json=interaction_body("hello"),
                          headers={"Authorization": "Bearer not-the-key"}) == 401
            json_type = {**auth, "Content-Type": "application/json"}
            assert reject("POST", INTERACTION, content=b"{broken", headers=json_type) == 400
            assert reject("POST", INTERACTION, content=b"x" * 4096, headers=json_type) == 413
            completion = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
            client_key = secrets["VALID_API_KEYS"].split(",")[0]
            reject("POST", "/v1/chat/completions", json=completion, headers={"Authorization": "Bearer wrong"})
            reject("POST", "/v1/chat/completions", json={**completion, "n": 3},
                   headers={"Authorization": f"Bearer {client_key}"})
            reject("GET", "/v1/models", headers={"X-API-Key": "wrong-key"})
            reject("GET", "/api/v1/ai/config", headers={"Authorization": "Bearer wrong-admin-key"})
            reject("DELETE", f"/api/v1/ai/context/twitch/{user}", headers={"Authorization": "Bearer wrong"})
            # 6. no request id (or a malformed one): one is created and echoed
            created = call("GET", "/api/v1/ai/status")
            assert re.fullmatch(r"[0-9a-f]{32}", created.headers["x-request-id"])
            replaced = call("GET", "/api/v1/ai/status", headers={"X-Request-ID": "bad id; drop table"})
            assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
            # 7. /metrics of the real process passes promtool's linter
            scrape = call("GET", "/metrics").text
        assert service.stop() == 0
    finally:
        service.stop()

    output, errors = service.output(), "".join(service.stderr)
    records = service.records()
    assert_common_fields(records)

    # No secret anywhere: logs, stderr, response bodies and headers.
    seen = output + errors + "".join(r.text + str(dict(r.headers)) for r in responses)
    for secret in secret_strings:
        assert secret not in seen, f"secret {secret[:6]}… leaked"
    assert errors.strip() == "", errors
    assert "Traceback" not in output

    # Lifecycle events, once each; the configuration summary says "set", never the value.
    def events(event: str) -> list[dict[str, Any]]:
        return [r for r in records if r["event"] == event]

    started = events("service started")
    assert len(started) == 1
    assert started[0]["config"]["router_service_key"] == "set"
    assert started[0]["config"]["waddleai_api_key"] == "set"
    assert started[0]["config"]["valid_api_keys"] == "set"
    for event in ("shutdown signal received", "draining", "drain finished", "service stopped"):
        assert len(events(event)) == 1, event
    assert events("drain finished")[0]["result"] == "complete"
    transitions = events("circuit breaker transition")
    assert [(t["provider"], t["result"]) for t in transitions] == [("ollama", "open")]
    assert any("Running on" in r["event"] for r in records)  # Hypercorn's own line, as JSON

    # The access log: successful requests at debug (counted by http_requests_total; interactions log
    # their own line), failed ones at info with route template, status, time and request id.
    access = [r for r in records if r.get("action") == "http_request"]
    assert not [r for r in access if r.get("request_id") == "req-log-greeting-1"]
    refused = [r for r in access if r["route"] == INTERACTION]
    assert {r["status"] for r in refused} >= {400, 401, 413}
    for line in refused:
        assert line["level"] == "info" and line["method"] == "POST" and line["status"] >= 400
        assert isinstance(line["execution_time_ms"], (int, float)) and line["request_id"]
    assert all(r["status"] >= 400 for r in access)
    assert all("path" not in r for r in access)

    # Interaction lines: request id, interaction id, hashed user, outcome; never raw id or text.
    finished = {r["request_id"]: r for r in records if r.get("action") == "process_interaction"}
    first = finished["req-log-greeting-1"]
    assert first["interaction_id"] == greeting_id
    assert first["user"] == user_hash(user, salt)
    assert first["result"] == "replied" and first["trigger"] == "greeting"
    assert "community" in first and isinstance(first["execution_time_ms"], (int, float))
    assert finished["req-log-failover-1"]["result"] == "replied"
    assert finished["req-log-fallback-1"]["result"] == "fallback"
    assert finished["req-log-router-down"]["result"] == "failed"
    undelivered = events("reply not delivered to the router")
    assert len(undelivered) == 1 and undelivered[0]["interaction_id"] == lost_id
    assert undelivered[0]["request_id"] == "req-log-router-down"
    assert user not in output and words not in output
    assert "second-user-1" not in output

    # The request id travelled to the provider and router calls (the fakes record headers).
    ollama_calls = [h for path, h, _ in fake_ollama.requests if path == "/api/chat"]
    assert ollama_calls[0]["x-request-id"] == "req-log-greeting-1"
    waddle_calls = [h for path, h, _ in fake_openai.requests if path == "/v1/chat/completions"]
    assert [h["x-request-id"] for h in waddle_calls[:2]] == ["req-log-failover-1", "req-log-failover-2"]
    router_ids = [a["headers"].get("x-request-id") for a in fake_router.attempts]
    assert router_ids[0] == "req-log-greeting-1" and "req-log-router-down" in router_ids
    assert all(a["headers"].get("x-service-key") == secrets["ROUTER_API_KEY"] for a in fake_router.attempts)

    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


def test_database_password_never_appears_even_when_the_database_is_unreachable(fake_ollama, fake_router):
    password = "Db-Pass-Gg55hh"
    ollama = urlparse(fake_ollama.url)
    service = Service({
        "DATABASE_URL": f"postgresql://aiuser:{password}@127.0.0.1:{free_port()}/ai",
        "OLLAMA_HOST": ollama.hostname, "OLLAMA_PORT": str(ollama.port),
        "ROUTER_API_URL": fake_router.base_url, "SHUTDOWN_GRACE_S": "2",
    })
    bodies = []
    try:
        if service.wait_up(timeout=20):
            with httpx.Client(base_url=service.url, timeout=10) as client:
                bodies.append(client.post(INTERACTION, json=interaction_body("hello")).text)
                bodies.append(client.get("/ready").text)
                bodies.append(client.get("/api/v1/ai/status").text)
    finally:
        service.stop()
    seen = service.output() + "".join(service.stderr) + "".join(bodies)
    assert password not in seen
    assert f"aiuser:{password}" not in seen
    service.records()  # every stdout line is JSON, whatever happened


@pytest.fixture
def captured(monkeypatch):
    """`captured(level, salt, secrets)`: configure_logging() writing to a buffer, returned.
    Called in the test body (pytest puts its own sys.stdout back between setup and call); the
    suite's configuration is restored afterwards."""
    buffer = io.StringIO()

    def configure(level: str = "INFO", salt: str = "waddlebot", secrets: list[str] | None = None) -> io.StringIO:
        monkeypatch.setattr(sys, "stdout", buffer)
        logs.configure_logging(level, salt, secrets)
        return buffer

    yield configure
    monkeypatch.undo()
    logs.configure_logging("WARNING")


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_secrets_are_scrubbed_wherever_they_appear(captured):
    url = "postgresql://ai:p%40ss-w0rd@db:5432/ai"
    out = captured("INFO", "salt-1234", ["key-with-\"quote", url, "waddlebot", "sk-abcdef", "salt-1234"])
    log = logs.get_logger("scrub-test")
    log.info("nested", config={"dsn": url, "keys": ["sk-abcdef"]}, error='bad key-with-"quote here')
    log.warning("driver said: password p@ss-w0rd rejected", salt="salt-1234")
    logging.getLogger("some.library").error("failed with sk-abcdef")
    try:
        raise RuntimeError("connect to " + url)
    except RuntimeError:
        log.exception("crash")
    text = out.getvalue()
    for secret in (url, "p@ss-w0rd", "p%40ss-w0rd", "sk-abcdef", "key-with-", "salt-1234"):
        assert secret not in text, secret
    records = lines(out)
    assert records[0]["config"] == {"dsn": "***", "keys": ["***"]}
    assert records[2] == {**records[2], "component": "some.library", "level": "error", "event": "failed with ***"}
    assert "RuntimeError" in records[3]["exception"]
    # The default salt is public, not a secret: the default bot name is not blotted out.
    log.info("bot", bot_name="waddlebot")
    assert lines(out)[-1]["bot_name"] == "waddlebot"


def test_log_lines_carry_the_fields_operators_filter_on(captured):
    out = captured("INFO", "a-salt")
    token = logs.request_id_var.set("req-unit-1")
    try:
        logs.get_logger("fields").info("hello", action="unit", result="ok")
    finally:
        logs.request_id_var.reset(token)
    logs.get_logger("fields").debug("filtered out at INFO")
    (record,) = lines(out)
    assert record["request_id"] == "req-unit-1" and record["module"] == "ai_interaction_module"
    assert record["component"] == "fields" and record["level"] == "info" and record["event"] == "hello"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["timestamp"])


def test_user_hash_is_short_salted_and_stable(captured):
    captured("INFO", "salt-a")
    first = logs.hash_user("user-1")
    assert first == logs.hash_user("user-1") == user_hash("user-1", "salt-a")
    assert len(first) == 12 and first != logs.hash_user("user-2")
    captured("INFO", "salt-b")
    assert logs.hash_user("user-1") != first
