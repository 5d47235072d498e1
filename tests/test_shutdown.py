"""SIGTERM on a real `python app.py` process: stop accepting, finish in-flight work, exit 0 (§9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import httpx

from tests.server_thread import free_port
from tests.support import interaction_body
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def start_service(fake_ollama, fake_router, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    parsed = urlparse(fake_ollama.url)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")},
        "MODULE_PORT": str(port), "MODULE_HOST": "127.0.0.1",
        "OLLAMA_HOST": parsed.hostname, "OLLAMA_PORT": str(parsed.port),
        "ROUTER_API_URL": fake_router.base_url, "USER_COOLDOWN_S": "0",
        "SHUTDOWN_GRACE_S": "20", "WORKER_COUNT": "2", "LOG_LEVEL": "INFO",
        **env,
    }
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"service exited early:\n{proc.stdout.read()}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=20, message="service start")
    return proc, url


def test_sigterm_drains_in_flight_replies_then_exits_zero(fake_ollama, fake_router):
    fake_ollama.delay = 0.5  # each reply takes a while, so work is in flight at SIGTERM
    proc, url = start_service(fake_ollama, fake_router)
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            ids = []
            for i in range(8):
                response = client.post("/api/v1/ai/interaction", json=interaction_body("hello", user_id=f"u{i}"))
                assert response.status_code == 202
                ids.append(response.json()["data"]["interaction_id"])
            wait_until(lambda: len(fake_ollama.requests) >= 1, message="first LLM call in flight")
            proc.send_signal(signal.SIGTERM)

            def refused() -> bool:
                try:
                    r = client.post("/api/v1/ai/interaction", json=interaction_body("hello", user_id="late"))
                except httpx.TransportError:
                    return False
                assert r.status_code != 202, "accepted work after SIGTERM"
                return r.status_code == 503 and bool(r.headers.get("retry-after"))

            wait_until(refused, timeout=5, message="503 while draining")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read()
    delivered = {r["body"]["interaction_id"] for r in fake_router.replies}
    assert delivered == set(ids), output[-3000:]
    assert all(r["body"]["response_data"]["fallback"] is False for r in fake_router.replies)
    assert '"action": "shutdown_drain"' in output and '"result": "complete"' in output


def test_bad_configuration_stops_start_up_naming_the_variable():
    env = {"PATH": os.environ["PATH"], "OLLAMA_PORT": "not-a-port", "AI_PROVIDER": "skynet"}
    proc = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "OLLAMA_PORT" in proc.stderr and "AI_PROVIDER" in proc.stderr
