"""The app is a plain ASGI app: Hypercorn (`python app.py`), uvicorn and granian run it unchanged.
Under each: an interaction is answered through the router, the official openai client completes
and streams, and SIGTERM ends the process after its drain."""

from __future__ import annotations

import signal

import httpx
import openai
import pytest

from tests.service_process import SERVERS, start_service
from tests.support import interaction_body
from tests.waiting import wait_until

KEY = "servers-test-key"


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_the_app_runs_unchanged_under(server, fake_ollama, fake_router):
    proc, url = start_service(server, fake_ollama, fake_router, VALID_API_KEYS=KEY)
    try:
        accepted = httpx.post(f"{url}/api/v1/ai/interaction", json=interaction_body("hello chat!"), timeout=5)
        assert accepted.status_code == 202
        interaction_id = accepted.json()["data"]["interaction_id"]
        wait_until(lambda: any(r["body"]["interaction_id"] == interaction_id for r in fake_router.replies),
                   timeout=15, message="the reply posted to the router")
        reply = next(r for r in fake_router.replies if r["body"]["interaction_id"] == interaction_id)
        assert reply["body"]["response_data"]["trigger_type"] == "greeting"
        assert reply["body"]["response_data"]["fallback"] is False
        with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=10) as client:
            completion = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
            assert completion.choices[0].message.content == fake_ollama.reply
            streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True) if chunk.choices)
            assert streamed == fake_ollama.reply
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read()
    assert '"action": "shutdown_drain"' in output and '"result": "complete"' in output, output[-3000:]
