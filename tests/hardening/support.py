"""Shared by the hardening tests and the soak: the books of /metrics, durations from the environment.

`Ledger` reads `/metrics` of a running service (in-process or a real `python app.py`) and checks the
promise "every accepted interaction ends in exactly one outcome": the rise of
`ai_interactions_accepted_total` equals the sum of the rises of `ai_interactions_total` over
every outcome, once the service is idle. Only deltas are compared, so earlier tests in the same
process (one shared registry) do not matter.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

# Bodies of the service must never show these (a stack trace, an internal message, a repr).
LEAK_MARKERS = re.compile(
    r"Traceback|File \"|line \d+, in|\bat 0x[0-9a-f]+|errors\.pydantic\.dev|pydantic_core|jiter|"
    r"asyncpg|sqlalchemy|KeyError|TypeError|AttributeError|UnicodeDecodeError|RuntimeError|"
    r"Internal server error.*\w+Error|site-packages",
)


def env_float(name: str, default: float) -> float:
    """A duration or count from the environment (e.g. HARDENING_ROUTER_DOWN_S), else the default."""
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Books:
    accepted: float
    outcomes: Counter[str]
    router: Counter[str]

    @property
    def finished(self) -> float:
        return sum(self.outcomes.values())


def read_books(http: httpx.Client) -> Books:
    text = http.get("/metrics").text
    accepted = 0.0
    outcomes: Counter[str] = Counter()
    router: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ai_interactions_accepted_total":
                accepted += sample.value
            elif sample.name == "ai_interactions_total":
                outcomes[sample.labels["outcome"]] += sample.value
            elif sample.name == "ai_router_posts_total":
                router[sample.labels["result"]] += sample.value
    return Books(accepted, outcomes, router)


class Ledger:
    """Deltas of the interaction books since construction, read from the service's /metrics."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.start = read_books(http)

    def now(self) -> Books:
        books = read_books(self.http)
        outcomes = Counter({k: v - self.start.outcomes.get(k, 0.0) for k, v in books.outcomes.items()})
        router = Counter({k: v - self.start.router.get(k, 0.0) for k, v in books.router.items()})
        return Books(books.accepted - self.start.accepted, +outcomes, +router)

    def settled(self, accepted: int, timeout: float = 30.0) -> Books:
        """Wait until `accepted` interactions were accepted and each has exactly one outcome."""
        seen: list[Books] = []

        def balanced() -> bool:
            books = self.now()
            seen.append(books)
            assert books.finished <= books.accepted, f"more outcomes than accepted interactions: {books}"
            return books.accepted == accepted and books.finished == accepted

        try:
            wait_until(balanced, timeout=timeout, interval=0.05, message=f"{accepted} outcomes")
        except AssertionError:
            raise AssertionError(f"books did not balance: {seen[-1] if seen else None}") from None
        return seen[-1]


def assert_clean_error_body(response: httpx.Response) -> None:
    """No stack trace, exception name or internal detail in what the caller sees."""
    assert not LEAK_MARKERS.search(response.text), response.text[:500]


def assert_service_error(response: httpx.Response, *fields: str) -> dict[str, Any]:
    """The service's own error shape, naming each of `fields` in `details`."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert body["success"] is False, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], list), body
    named = {d.get("field") for d in error["details"]}
    for field in fields:
        assert field in named or any(str(n).startswith(field + ".") for n in named if n), (field, body)
    assert_clean_error_body(response)
    return error


def assert_openai_error(response: httpx.Response, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape; `param` names the bad field when given."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    if param is not None:
        assert error["param"] is not None and error["param"].startswith(param), error
    assert_clean_error_body(response)
    return error
