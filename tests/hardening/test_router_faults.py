"""Router faults against the real app on loopback (§6).

- Down (connections refused) for HARDENING_ROUTER_DOWN_S (default 3), then back: every reply is
  delivered after it returns, within the retry budget HARDENING_ROUTER_BUDGET_S (default 10).
  `HARDENING_ROUTER_DOWN_S=20 HARDENING_ROUTER_BUDGET_S=30` is the soak's outage; `make soak` also
  takes the router down for SOAK_ROUTER_DOWN_S (default 20) under traffic.
- 4xx: not retried, counted (router posts `failed`, outcome `failed`), nothing else affected.
- A hanging router request does not hold up the other replies (no head-of-line blocking), and a
  slow router delays nothing but itself.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.hardening.support import Ledger, env_float
from tests.support import interaction_body, make_settings, running_app
from tests.waiting import wait_until

DOWN_S = env_float("HARDENING_ROUTER_DOWN_S", 3)
BUDGET_S = env_float("HARDENING_ROUTER_BUDGET_S", 10)


def post_many(app, n: int, prefix: str, **fields) -> list[str]:
    ids = []
    for i in range(n):
        body = {"user_id": f"{prefix}-{i}", **fields}
        response = app.post_interaction(interaction_body("hello there", **body))
        assert response.status_code == 202, response.text
        ids.append(response.json()["data"]["interaction_id"])
    return ids


def router_down_then_back(app, fake_router, down_s: float, n: int = 10) -> dict[str, float]:
    """Take the router down, post n interactions, bring it back after `down_s`; returns figures."""
    fake_router.down = True
    went_down = time.monotonic()
    ids = post_many(app, n, "outage")
    refused_before = len(fake_router.attempts)
    # The outage lasts `down_s` (the fault's length, not a wait for an event); meanwhile the
    # service keeps retrying and keeps accepting.
    wait_until(lambda: time.monotonic() - went_down >= down_s, timeout=down_s + 5, interval=0.1,
               message="the outage to last its length")
    assert app.http.get("/health").status_code == 200
    fake_router.down = False
    back = time.monotonic()
    replies = fake_router.wait_for_replies(n, timeout=BUDGET_S + 15)
    delivered = Counter(r["headers"]["idempotency-key"] for r in replies)
    assert set(delivered) == set(ids), "a reply was lost across the outage"
    assert max(delivered.values()) == 1, "a reply was delivered twice"
    assert refused_before == 0  # nothing reached a router that was down
    return {"down_s": round(back - went_down, 1), "delivered": len(delivered),
            "after_back_s": round(max(r["time"] for r in replies) - back, 1)}


def test_router_down_then_back_delivers_every_reply_within_the_budget(fake_ollama, fake_router):
    assert DOWN_S < BUDGET_S, "the outage must fit in the retry budget for the promise to hold"
    settings = make_settings(ollama=fake_ollama, router=fake_router, router_retry_max_s=BUDGET_S)
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        figures = router_down_then_back(app, fake_router, DOWN_S)
        books = ledger.settled(10)
        assert books.outcomes == {"replied": 10}
        assert books.router["delivered"] == 10 and books.router["failed"] == 0
        assert books.router["retried"] >= 10  # every reply was retried at least once
    print(f"router down {figures['down_s']} s: {figures['delivered']} replies delivered "
          f"{figures['after_back_s']} s after it came back")


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_router_4xx_is_final_counted_and_harms_nothing_else(fake_ollama, fake_router, status):
    settings = make_settings(ollama=fake_ollama, router=fake_router, router_retry_max_s=BUDGET_S)
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        fake_router.fail_status = status
        refused = post_many(app, 5, "refused")
        wait_until(lambda: ledger.now().outcomes["failed"] == 5, message="five failed outcomes")
        per_reply = Counter(a["headers"]["idempotency-key"] for a in fake_router.attempts)
        assert per_reply == Counter({iid: 1 for iid in refused})  # one attempt each: never retried
        fake_router.fail_status = None
        accepted = post_many(app, 3, "accepted")
        replies = fake_router.wait_for_replies(3)
        assert sorted(r["body"]["interaction_id"] for r in replies) == sorted(accepted)
        books = ledger.settled(8)
        assert books.outcomes == {"failed": 5, "replied": 3}
        assert books.router == {"failed": 5, "delivered": 3}  # no "retried"


def test_a_hanging_router_request_does_not_block_the_other_replies(fake_ollama, fake_router):
    fake_router.hang_if = lambda attempt: (attempt["body"] or {}).get("user_id") == "slowpoke"
    settings = make_settings(ollama=fake_ollama, router=fake_router, router_timeout_s=60, router_retry_max_s=60)
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        (stuck,) = post_many(app, 1, "x", user_id="slowpoke")
        wait_until(lambda: any(a["headers"].get("idempotency-key") == stuck for a in fake_router.attempts),
                   message="the slow reply to reach the router")
        others = post_many(app, 20, "other")
        replies = fake_router.wait_for_replies(20)
        assert sorted(r["body"]["interaction_id"] for r in replies) == sorted(others)
        pending = [a for a in fake_router.attempts if a["headers"].get("idempotency-key") == stuck]
        assert len(pending) == 1 and pending[0]["status"] is None  # still hanging meanwhile
        assert ledger.now().outcomes == {"replied": 20}
        fake_router.hang_if = None
        assert fake_router.wait_for_replies(21)[-1]["body"]["interaction_id"] == stuck
        assert ledger.settled(21).outcomes == {"replied": 21}


def test_a_slow_router_slows_only_itself(fake_ollama, fake_router):
    fake_router.delay = 0.5
    settings = make_settings(ollama=fake_ollama, router=fake_router)
    with running_app(settings) as app:
        ledger = Ledger(app.http)
        ids = post_many(app, 30, "slow")  # every ACK answered while replies queue up at the router
        wait_until(lambda: sum(a["status"] is None for a in fake_router.attempts) >= 2,
                   message="several replies waiting on the router at once")
        replies = fake_router.wait_for_replies(30, timeout=30)
        assert sorted(r["body"]["interaction_id"] for r in replies) == sorted(ids)
        assert ledger.settled(30).outcomes == {"replied": 30}
