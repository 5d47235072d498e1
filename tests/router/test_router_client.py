"""RouterClient (§6): one attempt at a time against the loopback fake router, and the wait before
the next. The retry loop (budget, expiry, scheduling) is the outbox's: tests/interactions/test_outbox.py."""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid

import pytest

from observability.logs import request_id_var
from router.client import RouterClient, parse_retry_after
from tests.fakes.fake_router import FakeRouter
from tests.server_thread import free_port
from tests.support import IsolatedSettings
from tests.waiting import async_wait_until


def payload(interaction_id: str | None = None) -> dict:
    iid = interaction_id or uuid.uuid4().hex
    return {
        "session_id": "sess-1", "interaction_id": iid, "execution_id": None,
        "module_name": "ai_interaction_module", "success": True, "response_action": "chat",
        "response_data": {"message": "🤖 hi <b>there</b> & *you*", "trigger_type": "greeting",
                          "provider": "ollama", "model": "llama3.2", "fallback": False},
        "chat_message": "🤖 hi <b>there</b> & *you*", "platform": "twitch",
        "entity_id": "twitch:channel:789", "channel_id": None, "user_id": "u-1",
        "metadata": {"nested": {"list": [1, 2.5, "three", None]}}, "processing_time_ms": 812,
    }


@pytest.fixture
async def make_client():
    clients: list[RouterClient] = []

    def make(base_url: str, **kwargs) -> RouterClient:
        kwargs.setdefault("api_key", None)
        kwargs.setdefault("timeout_s", 2.0)
        kwargs.setdefault("retry_max_s", 1.0)
        client = RouterClient(base_url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def send(client: RouterClient, interaction_id: str, request_id: str | None = None):
    return await client.attempt(payload(interaction_id), client.headers(interaction_id, request_id))


async def test_payload_and_headers_pass_through(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, api_key="router-secret-key")
    body = payload()

    attempt = await client.attempt(body, client.headers(body["interaction_id"], "req-123"))

    assert (attempt.result, attempt.status, attempt.error) == ("delivered", 200, None)
    [reply] = fake_router.replies
    assert reply["body"] == body
    assert fake_router.attempts[0]["path"] == "/api/v1/router/responses"
    assert fake_router.attempts[0]["method"] == "POST"
    headers = reply["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == body["interaction_id"]
    assert headers["x-request-id"] == "req-123"
    assert headers["x-service-key"] == "router-secret-key"
    assert headers["user-agent"].startswith("ai_interaction_module/")


async def test_no_service_key_when_unset_and_request_id_created_or_inherited(make_client) -> None:
    client = make_client("http://127.0.0.1:1/api/v1/router", api_key=None)
    created = client.headers("a", None)
    token = request_id_var.set("bound-request-id")
    try:
        inherited = client.headers("b", None)
    finally:
        request_id_var.reset(token)
    assert "X-Service-Key" not in created
    assert len(created["X-Request-ID"]) >= 16
    assert inherited["X-Request-ID"] == "bound-request-id"
    assert (created["Idempotency-Key"], inherited["Idempotency-Key"]) == ("a", "b")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_429_and_5xx_are_worth_another_attempt(fake_router: FakeRouter, make_client, status: int) -> None:
    client = make_client(fake_router.base_url)
    fake_router.fail_status = status
    attempt = await send(client, "i-retry")
    assert (attempt.result, attempt.status, attempt.retry_after) == ("retry", status, None)
    assert attempt.error == f"router answered {status}"


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_are_final(fake_router: FakeRouter, make_client, status: int) -> None:
    client = make_client(fake_router.base_url)
    fake_router.fail_status = status
    attempt = await send(client, "i-4xx")
    assert (attempt.result, attempt.status) == ("refused", status)
    assert fake_router.replies == []


async def test_retry_after_seconds_and_http_date_are_read(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url)
    fake_router.fail_status, fake_router.retry_after = 429, 7
    assert (await send(client, "i-429")).retry_after == 7.0
    fake_router.fail_status = 503
    fake_router.retry_after = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (await send(client, "i-date")).retry_after <= 30


async def test_connection_refused_is_worth_another_attempt(make_client) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/api/v1/router")
    attempt = await send(client, "i-down")
    # httpx-aiohttp names a refused connection ConnectTimeout (llm/http.py); its message says what happened
    assert (attempt.result, attempt.status) == ("retry", None)
    assert "Cannot connect to host" in attempt.error


async def test_a_hanging_router_times_out_after_the_attempt_timeout(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, timeout_s=0.3)
    fake_router.hang = True
    attempt = await send(client, "i-hang")
    assert (attempt.result, attempt.status) == ("retry", None)
    assert "Timeout" in attempt.error
    assert fake_router.replies == []


async def test_cancellation_propagates(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, timeout_s=5.0)
    fake_router.hang = True
    task = asyncio.create_task(send(client, "i-c"))
    await async_wait_until(lambda: fake_router.attempts, timeout=5, message="the attempt")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_wait_honours_retry_after_else_backs_off_exponentially_with_jitter(make_client) -> None:
    client = make_client("http://127.0.0.1:1/api/v1/router", wait_initial=0.2, wait_max=5.0, wait_jitter=0.5)
    assert client.wait_before(1, retry_after=12.0) == 12.0  # the router's word wins (the budget caps it)
    for attempts, base in ((1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6)):
        waits = {client.wait_before(attempts) for _ in range(20)}
        assert all(base <= w <= base + 0.5 for w in waits), (attempts, waits)
        assert len(waits) > 1  # jittered
    assert client.wait_before(10) == 5.0  # capped at wait_max


async def test_concurrent_posts_share_one_pooled_client(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, max_connections=5)
    http = client.http
    ids = [f"i-conc-{n}" for n in range(20)]

    results = await asyncio.gather(*(send(client, i) for i in ids))
    assert [r.result for r in results] == ["delivered"] * 20
    assert sorted(r["body"]["interaction_id"] for r in fake_router.replies) == sorted(ids)
    first_ports = {a["client"][1] for a in fake_router.attempts}
    assert len(first_ports) <= 5  # the pool limit holds: 20 posts over at most 5 connections

    for i in ids[:5]:  # later posts reuse the kept-alive connections
        assert (await send(client, i + "-again")).result == "delivered"
    later_ports = {a["client"][1] for a in fake_router.attempts[20:]}
    assert later_ports <= first_ports
    assert client.http is http


async def test_from_settings(fake_router: FakeRouter) -> None:
    settings = IsolatedSettings(router_api_url=fake_router.base_url + "/",
                                router_api_key="from-settings-key", router_timeout_s=3, router_retry_max_s=2)
    client = RouterClient.from_settings(settings)
    try:
        assert (client.url, client.timeout_s, client.retry_max_s) == (fake_router.base_url + "/responses", 3, 2)
        assert (await send(client, "i-s")).result == "delivered"
    finally:
        await client.aclose()
    assert fake_router.replies[0]["headers"]["x-service-key"] == "from-settings-key"


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    future = parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert future is not None and 28 <= future <= 30
