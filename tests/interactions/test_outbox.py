"""The reply outbox (§6) against the loopback fake router, in memory mode: real RouterClient,
MemoryQueue, MemoryReplies and context store; no mocks of our code, no fixed sleeps.

Delivery and its retries (backoff, Retry-After, the ROUTER_RETRY_MAX_S budget, final 4xx), expiry
before every attempt, one outcome per reply when the outbox is done with it, context only after
delivery, the bound (overflow), per-attempt scheduling (a reply waiting for its next attempt holds
no sender) and shutdown. Through the app: tests/hardening/test_router_outage.py; PostgreSQL:
tests/storage/test_pg_outbox.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import pytest

from interactions.model import Interaction, InteractionRequest
from interactions.outbox import outbox as outbox_module
from interactions.outbox.outbox import Outbox
from interactions.outbox.pending import PendingReply
from interactions.outbox.store import MemoryReplies
from interactions.queue.memory import MemoryQueue
from interactions.reply import conversation_key
from observability import metrics
from observability.metrics import REGISTRY
from router.client import RouterClient
from storage.context import MemoryContextStore
from tests.fakes.fake_router import FakeRouter
from tests.server_thread import free_port
from tests.web.admin_support import recorded_logs
from tests.waiting import async_wait_until

GIVE_UP_EVENT = "reply not delivered to the router"


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict]]:
    """The outbox's log lines within the block, as dicts with `event` and `log_level`."""
    lines: list[dict] = []
    with recorded_logs(outbox_module) as recorder:
        yield lines
    lines.extend({"event": args[0], "log_level": level, **fields} for level, args, fields in recorder.calls)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def books() -> dict[str, float]:
    """The counters an outbox moves, to compare before and after."""
    out = {f"router_{r}": sample("ai_router_posts_total", result=r) for r in ("delivered", "retried", "failed")}
    out |= {f"outbox_{r}": sample("ai_outbox_replies_total", result=r) for r in ("delivered", "failed", "expired")}
    out |= {f"outcome_{o}": sample("ai_interactions_total", outcome=o, trigger="greeting")
            for o in ("replied", "fallback", "failed", "expired")}
    out["overflow"] = sample("ai_outbox_overflow_total")
    return out


def moved(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in books().items() if v != before[k]}


def pending(user: str = "u-1", *, age_s: float = 0.0, outcome: str = "replied") -> PendingReply:
    request = InteractionRequest(session_id="s", user_id=user, entity_id="twitch:channel:1", platform="twitch",
                                 username=user, message_content="hello")
    interaction = Interaction(request, request_id=f"req-{user}", accepted_at=time.time() - age_s)
    body = {"interaction_id": interaction.id, "user_id": user, "chat_message": f"🤖 hi {user}"}
    return PendingReply(interaction, "greeting", outcome, body, exchange=(f"{user}: hello", f"hi {user}"))


@dataclass
class Harness:
    outbox: Outbox
    context: MemoryContextStore

    async def history(self, reply: PendingReply) -> list:
        return await self.context.history(conversation_key(reply.interaction.request))


@pytest.fixture
async def make_outbox(fake_router: FakeRouter):
    made: list[tuple[Outbox, RouterClient]] = []

    def make(url: str | None = None, *, senders: int = 2, capacity: int = 100, max_age_s: float = 60,
             retry_max_s: float = 1.0, timeout_s: float = 2.0) -> Harness:
        router = RouterClient(url or fake_router.base_url, api_key=None, timeout_s=timeout_s,
                              retry_max_s=retry_max_s, wait_initial=0.02, wait_max=0.2, wait_jitter=0.02)
        context = MemoryContextStore(5, 600, 100)

        async def remember(interaction: Interaction, exchange: tuple[str, str]) -> None:
            await context.append(conversation_key(interaction.request), *exchange)

        outbox = Outbox(router, MemoryReplies(), MemoryQueue(10, 0), senders=senders, capacity=capacity,
                        max_age_s=max_age_s, poll_s=0.1, remember=remember)
        outbox.start()
        metrics.track_outbox(outbox)  # as the runtime does: ai_outbox_depth, ai_outbox_oldest_seconds
        made.append((outbox, router))
        return Harness(outbox, context)

    yield make
    for outbox, router in made:
        await outbox.stop()
        await router.aclose()


async def settled(before: dict[str, float], outcomes: int) -> dict[str, float]:
    """Wait until `outcomes` greeting outcomes were recorded since `before`; returns what moved."""
    def done() -> bool:
        now = moved(before)
        return sum(v for k, v in now.items() if k.startswith("outcome_")) >= outcomes
    await async_wait_until(done, timeout=10, message=f"{outcomes} outcomes")
    return moved(before)


async def test_delivered_once_with_its_key_then_remembered(fake_router, make_outbox) -> None:
    harness = make_outbox()
    reply = pending()
    before = books()
    await harness.outbox.put(reply)
    assert await settled(before, 1) == {"router_delivered": 1, "outbox_delivered": 1, "outcome_replied": 1}
    [delivered] = fake_router.replies
    assert delivered["headers"]["idempotency-key"] == reply.id
    assert delivered["headers"]["x-request-id"] == reply.interaction.request_id
    assert delivered["body"] == reply.body
    assert [(e.user_message, e.reply) for e in await harness.history(reply)] == [reply.exchange]
    assert harness.outbox.depth() == 0


async def test_retried_on_500_then_delivered_once(fake_router, make_outbox) -> None:
    harness = make_outbox(retry_max_s=5)
    fake_router.fail_status, fake_router.fail_times = 500, 2
    reply = pending()
    before = books()
    await harness.outbox.put(reply)
    figures = await settled(before, 1)
    assert figures == {"router_delivered": 1, "router_retried": 2, "outbox_delivered": 1, "outcome_replied": 1}
    assert [a["status"] for a in fake_router.attempts] == [500, 500, 200]
    assert {a["headers"]["idempotency-key"] for a in fake_router.attempts} == {reply.id}
    assert {a["headers"]["x-request-id"] for a in fake_router.attempts} == {reply.interaction.request_id}


@pytest.mark.parametrize("retry_after", ["1", "date"])
async def test_429_and_503_wait_as_long_as_retry_after_says(fake_router, make_outbox, retry_after) -> None:
    harness = make_outbox(retry_max_s=5)
    fake_router.fail_status, fake_router.fail_times = (429, 1) if retry_after == "1" else (503, 1)
    fake_router.retry_after = "1" if retry_after == "1" else email_date(2)  # whole seconds: 1–2 s from now
    before = books()
    await harness.outbox.put(pending())
    await settled(before, 1)
    first, second = fake_router.attempts
    assert second["time"] - first["time"] >= 0.9  # not the 20 ms backoff


def email_date(seconds: float) -> str:
    import email.utils
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


async def test_retry_after_is_capped_to_the_budget(fake_router, make_outbox) -> None:
    harness = make_outbox(retry_max_s=1.0)
    fake_router.fail_status, fake_router.retry_after = 503, 60
    before = books()
    await harness.outbox.put(pending())
    figures = await settled(before, 1)  # within seconds, not 60
    assert figures == {"router_retried": 1, "router_failed": 1, "outbox_failed": 1, "outcome_failed": 1}
    assert len(fake_router.attempts) == 2  # one at once, one when the budget ends


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_are_not_retried_and_end_failed_not_remembered(fake_router, make_outbox, status) -> None:
    harness = make_outbox(retry_max_s=5)
    fake_router.fail_status = status
    reply = pending()
    before = books()
    with capture_logs() as logs:
        await harness.outbox.put(reply)
        figures = await settled(before, 1)
    assert figures == {"router_failed": 1, "outbox_failed": 1, "outcome_failed": 1}
    assert len(fake_router.attempts) == 1
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert (entry["interaction_id"], entry["status"], entry["attempts"]) == (reply.id, status, 1)
    assert await harness.history(reply) == []  # never delivered: not history


async def test_gives_up_after_the_budget_when_always_503(fake_router, make_outbox) -> None:
    harness = make_outbox(retry_max_s=1.0)
    fake_router.fail_status = 503
    reply = pending()
    before = books()
    with capture_logs() as logs:
        await harness.outbox.put(reply)
        figures = await settled(before, 1)
    attempts = len(fake_router.attempts)
    assert attempts >= 3
    assert fake_router.attempts[-1]["time"] - fake_router.attempts[0]["time"] <= 1.2
    assert figures == {"router_retried": attempts - 1, "router_failed": 1, "outbox_failed": 1, "outcome_failed": 1}
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert entry["log_level"] == "error"
    assert (entry["interaction_id"], entry["status"], entry["attempts"]) == (reply.id, 503, attempts)


async def test_zero_budget_makes_exactly_one_attempt(fake_router, make_outbox) -> None:
    harness = make_outbox(retry_max_s=0)
    fake_router.fail_status = 503
    before = books()
    await harness.outbox.put(pending())
    assert await settled(before, 1) == {"router_failed": 1, "outbox_failed": 1, "outcome_failed": 1}
    assert len(fake_router.attempts) == 1


async def test_connection_refused_is_retried_until_the_budget(make_outbox) -> None:
    harness = make_outbox(f"http://127.0.0.1:{free_port()}/api/v1/router", retry_max_s=1.0)
    reply = pending()
    before = books()
    with capture_logs() as logs:
        await harness.outbox.put(reply)
        figures = await settled(before, 1)
    [entry] = [e for e in logs if e["event"] == GIVE_UP_EVENT]
    assert entry["interaction_id"] == reply.id
    assert entry["status"] is None and "Cannot connect to host" in entry["error"]
    assert entry["attempts"] >= 3
    assert figures["router_retried"] == entry["attempts"] - 1 and figures["outcome_failed"] == 1


async def test_router_down_then_back_is_delivered(fake_router, make_outbox) -> None:
    harness = make_outbox(retry_max_s=10.0)
    await asyncio.to_thread(setattr, fake_router, "down", True)
    reply = pending()
    before = books()
    await harness.outbox.put(reply)
    await async_wait_until(lambda: moved(before).get("router_retried", 0) >= 2, timeout=5,
                           message="retries while down")
    await asyncio.to_thread(setattr, fake_router, "down", False)
    assert (await settled(before, 1))["outcome_replied"] == 1
    assert len(fake_router.replies_for(reply.id)) == 1


async def test_a_hanging_attempt_times_out_and_is_tried_again(fake_router, make_outbox) -> None:
    harness = make_outbox(timeout_s=0.3, retry_max_s=5.0)
    fake_router.hang = True
    reply = pending()
    before = books()
    await harness.outbox.put(reply)
    await async_wait_until(lambda: len(fake_router.attempts) >= 2, timeout=5, message="a retry after the timeout")
    fake_router.hang = False
    assert (await settled(before, 1))["outcome_replied"] == 1
    assert len(fake_router.replies_for(reply.id)) == 1  # abandoned attempts were never answered
    assert moved(before)["router_retried"] == len(fake_router.attempts) - 1


async def test_expiry_is_checked_before_every_attempt(fake_router, make_outbox) -> None:
    """A reply already too old is never posted; one that grows too old while the router fails is
    not posted again: both end `expired`, and neither is history."""
    harness = make_outbox(max_age_s=0.5, retry_max_s=30)
    stale, retried = pending("stale", age_s=1.0), pending("retried")
    fake_router.fail_status = 503
    before = books()
    await harness.outbox.put(stale)
    await harness.outbox.put(retried)
    figures = await settled(before, 2)
    assert figures["outcome_expired"] == 2 and figures["outbox_expired"] == 2
    assert "outcome_failed" not in figures and "router_failed" not in figures
    keys = Counter(a["headers"]["idempotency-key"] for a in fake_router.attempts)
    assert stale.id not in keys and keys[retried.id] >= 1
    assert fake_router.attempts[-1]["headers"]["idempotency-key"] == retried.id
    assert await harness.history(retried) == []
    attempts = len(fake_router.attempts)
    fake_router.fail_status = None
    assert len(fake_router.attempts) == attempts and harness.outbox.depth() == 0


async def test_a_reply_waiting_for_its_next_attempt_holds_no_sender(fake_router, make_outbox) -> None:
    """One sender: the reply the router keeps refusing (503) waits between its attempts, and the
    others are delivered meanwhile."""
    harness = make_outbox(senders=1, retry_max_s=30)
    refused = pending("refused")
    fake_router.fail_if = lambda attempt: attempt["headers"].get("idempotency-key") == refused.id
    fake_router.retry_after = "0.5"
    await harness.outbox.put(refused)
    await async_wait_until(lambda: fake_router.attempts, message="the first attempt")
    others = [pending(f"other-{n}") for n in range(10)]
    for reply in others:
        await harness.outbox.put(reply)
    replies = await fake_router.await_replies(10)
    assert sorted(r["headers"]["idempotency-key"] for r in replies) == sorted(r.id for r in others)
    await async_wait_until(lambda: harness.outbox.depth() == 1,  # the refused one, waiting for its next attempt
                           message="the others done")
    assert fake_router.replies_for(refused.id) == []
    fake_router.fail_if = None
    await fake_router.await_replies(11)
    assert len(fake_router.replies_for(refused.id)) == 1


async def test_a_full_outbox_fails_the_overflow_counted_and_logged(fake_router, make_outbox) -> None:
    harness = make_outbox(capacity=2, retry_max_s=30)
    fake_router.hang = True
    held = [pending("held-1"), pending("held-2")]
    extra = pending("extra")
    before = books()
    for reply in held:
        await harness.outbox.put(reply)
    with capture_logs() as logs:
        await harness.outbox.put(extra)  # returns at once: the worker is never held
    assert moved(before) == {"overflow": 1, "outbox_failed": 1, "outcome_failed": 1}
    [entry] = [e for e in logs if e.get("action") == "outbox_put"]
    assert (entry["interaction_id"], entry["result"], entry["log_level"]) == (extra.id, "failed", "error")
    assert harness.outbox.depth() == 2
    assert sample("ai_outbox_depth") == 2 and sample("ai_outbox_oldest_seconds") >= 0
    fake_router.hang = False
    figures = await settled(before, 3)
    assert figures["outcome_replied"] == 2
    assert sorted(r["headers"]["idempotency-key"] for r in fake_router.replies) == sorted(r.id for r in held)


async def test_stop_counts_what_is_left_failed_and_logs_each(fake_router, make_outbox) -> None:
    harness = make_outbox(retry_max_s=30)
    fake_router.fail_status = 503
    left = [pending(f"left-{n}") for n in range(3)]
    for reply in left:
        await harness.outbox.put(reply)
    await async_wait_until(lambda: len(fake_router.attempts) >= 3, message="every reply tried")
    assert not await harness.outbox.drain(0.2)  # the router keeps refusing: not drained in time
    before = books()
    with capture_logs() as logs:
        await harness.outbox.stop()
    assert moved(before) == {"router_failed": 3, "outbox_failed": 3, "outcome_failed": 3}
    lines = [e for e in logs if e["event"] == "reply not delivered before shutdown"]
    assert sorted(e["interaction_id"] for e in lines) == sorted(r.id for r in left)
    assert harness.outbox.depth() == 0


async def test_many_replies_each_delivered_exactly_once(fake_router, make_outbox) -> None:
    harness = make_outbox(senders=4, retry_max_s=10)
    fake_router.fail_times, fake_router.fail_status = 60, 503  # the first 60 attempts are refused
    replies = [pending(f"many-{n}-{uuid.uuid4().hex[:6]}") for n in range(100)]
    before = books()
    for reply in replies:
        await harness.outbox.put(reply)
    figures = await settled(before, 100)
    assert figures["outcome_replied"] == 100
    delivered = Counter(r["headers"]["idempotency-key"] for r in fake_router.replies)
    assert delivered == Counter({r.id: 1 for r in replies})
