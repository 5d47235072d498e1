"""RouterClient (§6) against the loopback fake router: no mocks of our code, no fixed sleeps."""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid

import pytest
from structlog.testing import capture_logs

from tests.support import IsolatedSettings
from observability.logs import request_id_var
from observability.metrics import REGISTRY
from router.client import RouterClient, parse_retry_after
from tests.fakes.fake_router import FakeRouter
from tests.server_thread import free_port
from tests.waiting import async_wait_until

GIVE_UP_EVENT = "reply not delivered to the router"


def posts(result: str) -> float:
    return REGISTRY.get_sample_value("ai_router_posts_total", {"result": result}) or 0.0


def latency_count() -> float:
    return REGISTRY.get_sample_value("ai_router_post_latency_seconds_count") or 0.0


def snapshot() -> dict[str, float]:
    return {r: posts(r) for r in ("delivered", "retried", "failed")}


def moved(before: dict[str, float]) -> dict[str, float]:
    return {r: posts(r) - v for r, v in before.items()}


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
        kwargs.setdefault("wait_initial", 0.02)
        kwargs.setdefault("wait_max", 0.2)
        kwargs.setdefault("wait_jitter", 0.02)
        client = RouterClient(base_url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_payload_and_headers_pass_through(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, api_key="router-secret-key")
    body = payload()
    before, lat = snapshot(), latency_count()

    assert await client.post_reply(body, interaction_id=body["interaction_id"], request_id="req-123") is True

    [reply] = fake_router.replies
    assert reply["body"] == body
    assert fake_router.attempts[0]["path"] == "/api/v1/router/responses"
    assert fake_router.attempts[0]["method"] == "POST"
    headers = reply["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == body["interaction_id"]
    assert headers["x-request-id"] == "req-123"
    assert headers["x-service-key"] == "router-secret-key"
    assert fake_router.replies_for(body["interaction_id"]) == [reply]
    assert moved(before) == {"delivered": 1, "retried": 0, "failed": 0}
    assert latency_count() == lat + 1


async def test_no_service_key_when_unset_and_request_id_created_or_inherited(
        fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, api_key=None)
    assert await client.post_reply(payload("a"), interaction_id="a", request_id=None)
    token = request_id_var.set("bound-request-id")
    try:
        assert await client.post_reply(payload("b"), interaction_id="b", request_id=None)
    finally:
        request_id_var.reset(token)

    first, second = fake_router.replies
    assert "x-service-key" not in first["headers"]
    assert len(first["headers"]["x-request-id"]) >= 16
    assert second["headers"]["x-request-id"] == "bound-request-id"


async def test_retry_on_500_then_delivered_once(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=5.0)
    fake_router.fail_status, fake_router.fail_times = 500, 2
    before = snapshot()

    assert await client.post_reply(payload("i-500"), interaction_id="i-500", request_id="r-500")

    assert [a["status"] for a in fake_router.attempts] == [500, 500, 200]
    assert len(fake_router.replies_for("i-500")) == 1
    assert {a["headers"]["idempotency-key"] for a in fake_router.attempts} == {"i-500"}
    assert {a["headers"]["x-request-id"] for a in fake_router.attempts} == {"r-500"}
    assert moved(before) == {"delivered": 1, "retried": 2, "failed": 0}


async def test_429_honours_retry_after_seconds(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=5.0)
    fake_router.fail_status, fake_router.fail_times, fake_router.retry_after = 429, 1, 1

    assert await client.post_reply(payload("i-429"), interaction_id="i-429", request_id=None)

    first, second = fake_router.attempts
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 0.9  # Retry-After: 1, not the 20 ms backoff


async def test_503_honours_retry_after_http_date(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=5.0)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s from now
    fake_router.fail_status, fake_router.fail_times, fake_router.retry_after = 503, 1, when

    assert await client.post_reply(payload("i-date"), interaction_id="i-date", request_id=None)

    first, second = fake_router.attempts
    assert second["time"] - first["time"] >= 0.9


async def test_retry_after_is_capped_to_the_budget(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=1.0)
    fake_router.fail_status, fake_router.retry_after = 503, 60
    started = time.monotonic()

    assert await client.post_reply(payload("i-cap"), interaction_id="i-cap", request_id=None) is False

    assert time.monotonic() - started < 5  # not 60 s
    assert len(fake_router.attempts) == 2  # one at once, one when the budget ends


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_are_not_retried(fake_router: FakeRouter, make_client, status: int) -> None:
    client = make_client(fake_router.base_url, retry_max_s=5.0)
    fake_router.fail_status = status
    before = snapshot()

    with capture_logs() as logs:
        assert await client.post_reply(payload("i-4xx"), interaction_id="i-4xx", request_id=None) is False

    assert len(fake_router.attempts) == 1
    assert fake_router.replies == []
    assert moved(before) == {"delivered": 0, "retried": 0, "failed": 1}
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert (entry["interaction_id"], entry["status"], entry["attempts"]) == ("i-4xx", status, 1)


async def test_gives_up_after_budget_when_always_503(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=1.0)
    fake_router.fail_status = 503
    before = snapshot()
    started = time.monotonic()

    with capture_logs() as logs:
        assert await client.post_reply(payload("i-503"), interaction_id="i-503", request_id=None) is False

    assert time.monotonic() - started < 1.0 + 2.0 + 1.0  # budget + one attempt's timeout + slack
    attempts = len(fake_router.attempts)
    assert attempts >= 3
    assert fake_router.attempts[-1]["time"] - fake_router.attempts[0]["time"] <= 1.2
    assert moved(before) == {"delivered": 0, "retried": attempts - 1, "failed": 1}
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert entry["log_level"] == "error"
    assert entry["interaction_id"] == "i-503"
    assert entry["status"] == 503
    assert entry["attempts"] == attempts


@pytest.mark.filterwarnings("error")
async def test_zero_budget_makes_exactly_one_attempt(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=0)
    fake_router.fail_status = 503
    before = snapshot()

    assert await client.post_reply(payload("i-0"), interaction_id="i-0", request_id=None) is False

    assert len(fake_router.attempts) == 1
    assert moved(before) == {"delivered": 0, "retried": 0, "failed": 1}


async def test_connection_refused_is_retried_until_budget(make_client) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/api/v1/router", retry_max_s=1.0)
    before = snapshot()
    started = time.monotonic()

    with capture_logs() as logs:
        assert await client.post_reply(payload("i-down"), interaction_id="i-down", request_id=None) is False

    assert time.monotonic() - started < 4
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert entry["interaction_id"] == "i-down"
    # httpx-aiohttp names a refused connection ConnectTimeout (llm/http.py); its message says what happened
    assert entry["status"] is None and "Cannot connect to host" in entry["error"]
    assert entry["attempts"] >= 3
    assert moved(before) == {"delivered": 0, "retried": entry["attempts"] - 1, "failed": 1}


async def test_router_down_then_back_is_delivered(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, retry_max_s=10.0)
    await asyncio.to_thread(setattr, fake_router, "down", True)
    before = snapshot()

    task = asyncio.create_task(client.post_reply(payload("i-back"), interaction_id="i-back", request_id=None))
    await async_wait_until(lambda: moved(before)["retried"] >= 2, timeout=5, message="retries while down")
    await asyncio.to_thread(setattr, fake_router, "down", False)

    assert await asyncio.wait_for(task, 10) is True
    assert len(fake_router.replies_for("i-back")) == 1


async def test_hanging_router_times_out_and_is_retried(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, timeout_s=0.3, retry_max_s=5.0)
    fake_router.hang = True
    before = snapshot()

    task = asyncio.create_task(client.post_reply(payload("i-hang"), interaction_id="i-hang", request_id=None))
    await async_wait_until(lambda: len(fake_router.attempts) >= 2, timeout=5, message="a retry after the timeout")
    fake_router.hang = False

    assert await asyncio.wait_for(task, 10) is True
    assert len(fake_router.replies_for("i-hang")) == 1  # abandoned attempts were never answered
    assert moved(before)["retried"] == len(fake_router.attempts) - 1


async def test_hanging_router_until_budget_gives_up(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, timeout_s=0.3, retry_max_s=0.8)
    fake_router.hang = True
    started = time.monotonic()

    with capture_logs() as logs:
        assert await client.post_reply(payload("i-h2"), interaction_id="i-h2", request_id=None) is False

    assert time.monotonic() - started < 0.8 + 0.3 + 2
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert "Timeout" in entry["error"] and entry["attempts"] >= 2
    assert fake_router.replies == []


async def test_cancellation_propagates(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, timeout_s=5.0, retry_max_s=5.0)
    fake_router.hang = True
    before = snapshot()

    task = asyncio.create_task(client.post_reply(payload("i-c"), interaction_id="i-c", request_id=None))
    await async_wait_until(lambda: fake_router.attempts, timeout=5, message="the first attempt")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert moved(before) == {"delivered": 0, "retried": 0, "failed": 0}


async def test_concurrent_posts_share_one_pooled_client(fake_router: FakeRouter, make_client) -> None:
    client = make_client(fake_router.base_url, max_connections=5)
    http = client.http
    ids = [f"i-conc-{n}" for n in range(20)]

    results = await asyncio.gather(*(client.post_reply(payload(i), interaction_id=i, request_id=None) for i in ids))
    assert results == [True] * 20
    assert sorted(r["body"]["interaction_id"] for r in fake_router.replies) == sorted(ids)
    first_ports = {a["client"][1] for a in fake_router.attempts}
    assert len(first_ports) <= 5  # the pool limit holds: 20 posts over at most 5 connections

    for i in ids[:5]:  # later posts reuse the kept-alive connections
        assert await client.post_reply(payload(i + "-again"), interaction_id=i + "-again", request_id=None)
    later_ports = {a["client"][1] for a in fake_router.attempts[20:]}
    assert later_ports <= first_ports
    assert client.http is http


async def test_from_settings(fake_router: FakeRouter) -> None:
    settings = IsolatedSettings(router_api_url=fake_router.base_url + "/",
                        router_api_key="from-settings-key", router_timeout_s=3, router_retry_max_s=2)
    client = RouterClient.from_settings(settings)
    try:
        assert (client.url, client.timeout_s, client.retry_max_s) == (fake_router.base_url + "/responses", 3, 2)
        assert await client.post_reply(payload("i-s"), interaction_id="i-s", request_id=None)
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
