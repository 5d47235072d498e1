"""LLM faults against the real app on loopback (§3.6–7, §5, §8).

For each fault of the primary provider (Ollama): errors, hangs past REQUEST_TIMEOUT, garbage
bodies, connection refused. The breaker opens after exactly BREAKER_FAILURE_THRESHOLD calls, the
fallback provider answers while it is healthy, canned replies (marked) once it fails too, the ACK
answers throughout, and the books balance: accepted == sum of outcomes, from /metrics.
On the streaming OpenAI API: an NDJSON {"error"} line mid-stream, and slow token streams.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import httpx
import pytest

from tests.hardening.support import Ledger
from tests.server_thread import free_port
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until

THRESHOLD = 3
KEY = "hardening-openai-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _set(**values: Any) -> Callable[[Any], None]:
    return lambda fake: [setattr(fake, k, v) for k, v in values.items()]


# fault name → how to make the fake misbehave (None: nothing listens on Ollama's port at all)
FAULTS: dict[str, Callable[[Any], None] | None] = {
    "error_500": _set(fail_status=500),
    "error_503": _set(fail_status=503),
    "hang_past_timeout": _set(hang=True),
    "garbage_not_json": _set(garbage=True),
    "garbage_wrong_shape": _set(garbage="shape"),
    "connection_refused": None,
}


def chat_calls(fake: Any) -> int:
    return len(fake.chat_requests)


def breaker(app: Any, provider: str) -> str:
    return app.http.get("/ready").json()["providers"][provider]["breaker"]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_primary_llm_fault_fails_over_then_falls_back_and_every_interaction_ends_once(
        fault, fake_ollama, fake_openai, fake_router):
    make_fault = FAULTS[fault]
    overrides: dict[str, Any] = {}
    if make_fault is None:
        overrides.update(ollama_host="127.0.0.1", ollama_port=free_port())  # refused
    settings = make_settings(
        ollama=fake_ollama, openai=fake_openai, router=fake_router, fallback_provider="waddleai",
        worker_count=1, breaker_failure_threshold=THRESHOLD, breaker_reset_s=600, request_timeout=0.5,
        **overrides)
    if make_fault is not None:
        make_fault(fake_ollama)
    fake_openai.reply = "Hello from the fallback provider!"
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        acked: list[str] = []

        def post(user: str) -> None:
            response = app.post_interaction(interaction_body("hello there", user_id=user))
            assert response.status_code == 202, response.text  # the ACK answers whatever the LLM does
            acked.append(response.json()["data"]["interaction_id"])

        # 1. Ollama misbehaves, WaddleAI answers: failover, real replies.
        post("failover-0")
        if make_fault is not None:
            wait_until(lambda: chat_calls(fake_ollama) >= 1, message="the first Ollama call")
        for i in range(1, 6):
            post(f"failover-{i}")  # accepted while the single worker is stuck on the faulty call
        replies = fake_router.wait_for_replies(6, timeout=30)
        assert [r["body"]["response_data"]["provider"] for r in replies] == ["waddleai"] * 6
        assert not any(r["body"]["response_data"]["fallback"] for r in replies)
        assert breaker(app, "ollama") == "open"
        if make_fault is not None:
            assert chat_calls(fake_ollama) == THRESHOLD  # the open breaker spares the provider

        # 2. WaddleAI fails too: its breaker opens as well, canned replies marked as such.
        fake_openai.fail_status = 500
        for i in range(4):
            post(f"fallback-{i}")
        replies = fake_router.wait_for_replies(10, timeout=30)[6:]
        assert all(r["body"]["response_data"]["fallback"] is True for r in replies)
        assert all(r["body"]["response_data"]["provider"] is None for r in replies)
        assert breaker(app, "waddleai") == "open"
        assert chat_calls(fake_openai) == 6 + THRESHOLD

        books = ledger.settled(len(acked))
        assert books.outcomes == {"replied": 6, "fallback": 4}, books
    delivered = [r["body"]["interaction_id"] for r in fake_router.replies]
    assert sorted(delivered) == sorted(acked)  # each accepted interaction answered exactly once


def _stream(url: str, timeout: float = 30) -> tuple[int, list[bytes]]:
    """POST a streamed completion; (status, data payloads) of the SSE body."""
    body = {"model": "llama3.2", "stream": True, "messages": [{"role": "user", "content": "tell me a story"}]}
    with httpx.Client(timeout=timeout) as client:
        with client.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH) as response:
            raw = b"".join(response.iter_bytes())
    if response.status_code != 200:
        return response.status_code, [raw]
    assert raw.endswith(b"\n\n"), raw[-200:]
    frames = raw[:-2].split(b"\n\n")
    for frame in frames:
        assert frame.startswith(b"data: ") and b"\n" not in frame, frame
    return 200, [f[len(b"data: "):] for f in frames]


def test_error_line_mid_stream_is_in_band_counts_for_the_breaker_then_fails_over(
        fake_ollama, fake_openai, fake_router):
    fake_ollama.error_midstream_after = 2  # two pieces, then {"error": …} on the NDJSON stream
    fake_openai.reply = "Once upon a time"
    settings = make_settings(ollama=fake_ollama, openai=fake_openai, router=fake_router,
                             fallback_provider="waddleai", valid_api_keys=KEY,
                             breaker_failure_threshold=THRESHOLD, breaker_reset_s=600)
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        for attempt in range(THRESHOLD):
            status, events = _stream(app.url)
            assert status == 200
            assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
            assert "error" in json.loads(events[-1]) and events[-1] != b"[DONE]"  # no [DONE]: incomplete
            # (no trigger: a successful non-streamed call would reset the consecutive failures)
            assert app.post_interaction(interaction_body("just chatting", user_id=f"during-{attempt}")).status_code == 202
        assert chat_calls(fake_ollama) == THRESHOLD
        assert breaker(app, "ollama") == "open"
        # The open breaker: the next stream goes to the fallback provider before its first byte.
        status, events = _stream(app.url)
        assert status == 200 and events[-1] == b"[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e)["choices"])
        assert text == fake_openai.reply
        assert chat_calls(fake_ollama) == THRESHOLD
        assert app.post_interaction(interaction_body("hello", user_id="after")).status_code == 202
        reply = fake_router.wait_for_replies(1)[0]["body"]["response_data"]
        assert (reply["provider"], reply["fallback"]) == ("waddleai", False)  # the interaction path fails over too
        assert ledger.settled(THRESHOLD + 1).outcomes == {"ignored": THRESHOLD, "replied": 1}


def test_slow_token_streams_leave_the_ack_and_the_replies_flowing(fake_ollama, fake_router):
    fake_ollama.reply = "one two three four five six"
    fake_ollama.token_delay = 0.15  # each stream dribbles for about a second
    settings = make_settings(ollama=fake_ollama, router=fake_router, valid_api_keys=KEY,
                             max_concurrent_requests=4, request_timeout=10)
    with running_app(settings) as app, ThreadPoolExecutor(3) as pool:
        ledger = Ledger(app.http)
        streams = [pool.submit(_stream, app.url) for _ in range(3)]
        wait_until(lambda: fake_ollama.stream_started_at is not None, message="a stream under way")
        acked = []
        for i in range(10):  # while three slow streams hold provider slots
            response = app.post_interaction(interaction_body("hello", user_id=f"slow-{i}"))
            assert response.status_code == 202
            acked.append(response.json()["data"]["interaction_id"])
            assert app.http.get("/health").status_code == 200
        for future in streams:
            status, events = future.result(timeout=60)
            assert status == 200 and events[-1] == b"[DONE]"
            text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                           for e in events[:-1] if json.loads(e)["choices"])
            assert text == fake_ollama.reply
        replies = fake_router.wait_for_replies(10, timeout=30)
        assert sorted(r["body"]["interaction_id"] for r in replies) == sorted(acked)
        assert not any(r["body"]["response_data"]["fallback"] for r in replies)
        assert ledger.settled(10).outcomes == {"replied": 10}


def test_a_lone_surrogate_in_the_llm_answer_neither_loses_the_reply_nor_poisons_the_conversation(
        fake_ollama, fake_router):
    """A provider's JSON may carry half a surrogate pair ("\\ud83d", an emoji cut at a token
    boundary). It used to make the reply unpostable (outcome failed), and, remembered in the
    context, every later call of that viewer failed as "garbage" and counted for the breaker."""
    fake_ollama.reply = "hi \ud83d there"
    settings = make_settings(ollama=fake_ollama, router=fake_router, valid_api_keys=KEY,
                             breaker_failure_threshold=2)
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        for i in range(3):  # the same viewer, so the first exchange is in the next calls' context
            assert app.post_interaction(interaction_body(f"hello {i}")).status_code == 202
            fake_router.wait_for_replies(i + 1)
        replies = fake_router.replies
        assert [r["body"]["chat_message"] for r in replies] == ["\U0001f916 hi \ufffd there"] * 3
        assert not any(r["body"]["response_data"]["fallback"] for r in replies)
        assert breaker(app, "ollama") == "closed"
        assert ledger.settled(3).outcomes == {"replied": 3}
        status, events = _stream(app.url)  # the streamed answer keeps the surrogate, escaped
        assert status == 200 and events[-1] == b"[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e)["choices"])
        assert text == "hi \ud83d there"
