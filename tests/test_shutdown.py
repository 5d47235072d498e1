"""SIGTERM on a real service process, under Hypercorn (`python app.py`) and under uvicorn
(`uvicorn --factory app:create_app`): new work is refused, accepted work finishes, a clean exit (§9).
A second signal during the drain stops it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service_process import start_service
from tests.support import interaction_body
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SHUTDOWN_SERVERS = ("hypercorn", "uvicorn")


def post_interactions(url: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=5) as client:
        for i in range(count):
            response = client.post("/api/v1/ai/interaction", json=interaction_body("hello", user_id=f"u{i}"))
            assert response.status_code == 202
            ids.append(response.json()["data"]["interaction_id"])
    return ids


@pytest.mark.parametrize("server", SHUTDOWN_SERVERS)
def test_sigterm_drains_in_flight_replies_then_exits_zero(server, fake_ollama, fake_router):
    fake_ollama.delay = 0.5  # each reply takes a while, so work is in flight at SIGTERM
    proc, url = start_service(server, fake_ollama, fake_router)
    try:
        ids = post_interactions(url, 8)
        wait_until(lambda: len(fake_ollama.requests) >= 1, message="first LLM call in flight")
        proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                r = httpx.post(f"{url}/api/v1/ai/interaction", json=interaction_body("hello", user_id="late"),
                               timeout=2)
            except httpx.TransportError:
                return True  # the server stopped listening
            if r.status_code == 202:  # sent before the server saw the signal: accepted, so it must finish
                ids.append(r.json()["data"]["interaction_id"])
                return False
            return r.status_code == 503 and bool(r.headers.get("retry-after"))

        wait_until(refused, timeout=5, message="new work refused after SIGTERM")
        # uvicorn re-raises the signal once it has shut down cleanly, so its exit status names it
        assert proc.wait(timeout=30) == (0 if server == "hypercorn" else -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read()
    delivered = {r["body"]["interaction_id"] for r in fake_router.replies}
    assert delivered == set(ids), output[-3000:]
    assert all(r["body"]["response_data"]["fallback"] is False for r in fake_router.replies)
    assert '"action": "shutdown_drain"' in output and '"result": "complete"' in output


@pytest.mark.parametrize("server", SHUTDOWN_SERVERS)
def test_a_second_signal_during_the_drain_stops_at_once(server, fake_ollama, fake_router):
    fake_ollama.hang = True  # the LLM never answers: the drain would wait the whole grace period
    proc, url = start_service(server, fake_ollama, fake_router, SHUTDOWN_GRACE_S="120", REQUEST_TIMEOUT="120")
    try:
        post_interactions(url, 3)
        wait_until(lambda: len(fake_ollama.requests) >= 1, message="an LLM call hanging")
        proc.send_signal(signal.SIGTERM)
        lines: list[str] = []

        def draining() -> bool:
            line = proc.stdout.readline()
            lines.append(line)
            return '"action": "shutdown_drain"' in line or not line
        wait_until(draining, timeout=30, message="the drain under way")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # far less than SHUTDOWN_GRACE_S: the drain was cut short
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + proc.stdout.read()
    assert "second signal" in output, output[-3000:]
    assert '"result": "timeout"' in output or proc.returncode != 0


def test_bad_configuration_stops_start_up_naming_the_variable():
    env = {"PATH": os.environ["PATH"], "OLLAMA_PORT": "not-a-port", "AI_PROVIDER": "skynet"}
    proc = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "OLLAMA_PORT" in proc.stderr and "AI_PROVIDER" in proc.stderr
