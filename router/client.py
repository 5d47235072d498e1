"""Posts replies to the router (§6) through one long-lived, pooled HTTP client: one attempt at a time.

`attempt()` makes one POST and says what became of it: `delivered` (2xx), `retry` (connection
error, timeout, 429 or 5xx, with the router's `Retry-After` when it sent one) or `refused` (any
other answer: final). `wait_before(n, retry_after)` is the pause before attempt n + 1: the
router's `Retry-After` when given, else exponential backoff (`wait_initial` doubling, at most
`wait_max`) plus up to `wait_jitter` of random jitter. The retry loop itself is the reply outbox's
(interactions/outbox/): it schedules each attempt, so that a reply waiting for its next attempt
holds no sender, and it keeps the `ROUTER_RETRY_MAX_S` budget. Nothing here raises except
cancellation.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from httpx_aiohttp import AiohttpTransport

from config.settings import MODULE_NAME, VERSION
from observability import tracing
from observability.logs import new_request_id, request_id_var

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")

AttemptResult = Literal["delivered", "retry", "refused"]


@dataclass(frozen=True, slots=True)
class Attempt:
    result: AttemptResult
    status: int | None = None  # the router's answer; None: no answer (connection error, timeout)
    error: str | None = None  # what went wrong, for the log (None when delivered)
    retry_after: float | None = None  # seconds the router asked us to wait (429/503 `Retry-After`)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date; None when absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None


class RouterClient:
    destination = "router"  # a ReplySink (router/sink.py)

    def __init__(self, base_url: str, *, api_key: str | None, timeout_s: float, retry_max_s: float,
                 max_connections: int = 100, wait_initial: float = 0.2, wait_max: float = 5.0,
                 wait_jitter: float = 0.5) -> None:
        self.url = base_url.rstrip("/") + "/responses"
        parts = urlsplit(self.url)
        self._url_attributes = {  # of the attempts' spans: the URL without credentials
            "url.full": _USERINFO.sub("", self.url), "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80)}
        self.api_key = api_key or None
        self.timeout_s, self.retry_max_s = timeout_s, max(0.0, retry_max_s)
        self.wait_initial, self.wait_max, self.wait_jitter = wait_initial, wait_max, wait_jitter
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=AiohttpTransport(limits=httpx.Limits(  # aiohttp under httpx: C parser (llm/http.py)
                max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=30.0)),
            headers={"User-Agent": f"{MODULE_NAME}/{VERSION}"},
        )

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "RouterClient":
        key = settings.router_api_key
        if not settings.router_api_url:
            raise ValueError("ROUTER_API_URL is not set: replies go to the console (router/console.py)")
        return cls(settings.router_api_url, api_key=key.get_secret_value() if key else None,
                   timeout_s=settings.router_timeout_s, retry_max_s=settings.router_retry_max_s, **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()

    def headers(self, interaction_id: str, request_id: str | None) -> dict[str, str]:
        """The headers of every attempt of one reply: the same `Idempotency-Key` each time."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": interaction_id,
                   "X-Request-ID": request_id or request_id_var.get() or new_request_id()}
        if self.api_key:
            headers["X-Service-Key"] = self.api_key
        return headers

    async def attempt(self, payload: dict[str, Any], headers: dict[str, str], number: int = 1) -> Attempt:
        """POST one reply once (at most ROUTER_TIMEOUT_S). Raises only CancelledError.

        Traced as one `POST` client span (attempt `number` of this reply), whose context the router
        receives as `traceparent` (docs/design.md "Tracing")."""
        with self._attempt_span(number) as span:
            try:
                sent = {**headers, **tracing.headers_for(span)} if tracing.enabled() else headers
                response = await self.http.post(self.url, json=payload, headers=sent)
            except httpx.TransportError as exc:
                tracing.error(span, type(exc).__name__)
                return Attempt("retry", error=f"{type(exc).__name__}: {exc}".rstrip(": "))
            except Exception as exc:  # noqa: BLE001 - an unexpected failure must not lose the reply silently
                tracing.error(span, type(exc).__name__)
                return Attempt("refused", error=f"{type(exc).__name__}: {exc}".rstrip(": "))
            if span.is_recording():
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code >= 400:
                    tracing.error(span, str(response.status_code))
        status = response.status_code
        if 200 <= status < 300:
            return Attempt("delivered", status)
        if status == 429 or status >= 500:
            return Attempt("retry", status, f"router answered {status}",
                           parse_retry_after(response.headers.get("retry-after")))
        return Attempt("refused", status, f"router answered {status}")

    def _attempt_span(self, number: int) -> AbstractContextManager[tracing.Span]:
        """The client span of one HTTP attempt (HTTP semantic conventions); nothing when off."""
        if not tracing.enabled():
            return tracing.NO_SPAN
        attributes: dict[str, Any] = {"http.request.method": "POST", **self._url_attributes}
        if number > 1:
            attributes["http.request.resend_count"] = number - 1
        return tracing.span("POST", tracing.SpanKind.CLIENT, attributes)

    def wait_before(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after `attempts` failed attempts: the router's `Retry-After` when given,
        else exponential backoff with jitter. The caller caps it to what remains of the budget."""
        if retry_after is not None:
            return retry_after
        return min(self.wait_max, self.wait_initial * 2 ** (attempts - 1) + random.uniform(0, self.wait_jitter))
