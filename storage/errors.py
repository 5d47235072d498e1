"""The one failure a store reports to its callers: it cannot be reached right now."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The durable store cannot be reached. The HTTP layer answers 503 with Retry-After (never a
    false ACK); background work logs it and retries later."""

    def __init__(self, message: str = "Durable store unavailable, retry later", retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
