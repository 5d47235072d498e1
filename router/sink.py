"""Where the reply outbox delivers replies (§6): `ReplySink`, one attempt at a time.

Two sinks: the router (router/client.py, `ROUTER_API_URL` set) and the console (router/console.py,
`ROUTER_API_URL` unset). runtime.py chooses; the outbox (interactions/outbox/outbox.py) is the same
for both, so outcomes, context and metrics are too.
"""

from __future__ import annotations

from typing import Any, Protocol

from router.client import Attempt


class ReplySink(Protocol):
    destination: str  # what /ready says replies go to: "router" or "console"
    retry_max_s: float  # the budget of a reply's retries, from its first attempt

    def headers(self, interaction_id: str, request_id: str | None) -> dict[str, str]:
        """The headers of every attempt of one reply."""
        ...

    async def attempt(self, payload: dict[str, Any], headers: dict[str, str], number: int = 1) -> Attempt:
        """Deliver one reply once; raises only CancelledError."""
        ...

    def wait_before(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after `attempts` failed attempts."""
        ...

    async def aclose(self) -> None:
        ...
