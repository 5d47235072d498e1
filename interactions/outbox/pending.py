"""A reply on its way to the router: what the outbox delivers, and what it does once delivered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from interactions.model import Interaction


@dataclass(slots=True, eq=False)
class PendingReply:
    interaction: Interaction
    trigger: str
    outcome: str  # the interaction's outcome once delivered: replied, fallback or moderated
    body: dict[str, Any]  # what is posted to the router (router/bodies.py, ROUTER_PROTOCOL)
    exchange: tuple[str, str] | None = None  # (viewer's turn, reply): joins the context once delivered
    trace: dict[str, str] | None = None  # W3C headers of the interaction's trace: the posts continue it
    # the outbox's bookkeeping
    attempts: int = 0
    first_attempt: float | None = None  # event-loop time: the ROUTER_RETRY_MAX_S budget runs from here
    since: float = 0.0  # time.monotonic() when it entered this instance's outbox
    started: float | None = None  # time.perf_counter() when this instance began with it (execution_time_ms)
    headers: dict[str, str] = field(default_factory=dict)  # the same for every attempt (Idempotency-Key)

    @property
    def id(self) -> str:
        return self.interaction.id

    def to_json(self) -> str:
        """What the durable outbox keeps in the interaction's row (column `reply`)."""
        return json.dumps({"body": self.body, "trigger": self.trigger, "outcome": self.outcome,
                           "exchange": list(self.exchange) if self.exchange else None,
                           **({"trace": self.trace} if self.trace else {})}, ensure_ascii=False)

    @classmethod
    def from_json(cls, interaction: Interaction, text: str) -> "PendingReply":
        data = json.loads(text)
        exchange = data.get("exchange")
        trace = data.get("trace")
        return cls(interaction, data["trigger"], data["outcome"], data["body"],
                   (exchange[0], exchange[1]) if exchange else None,
                   trace if isinstance(trace, dict) else None)
