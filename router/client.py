"""Posts replies to the router (§6) through one long-lived, pooled HTTP client.

Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter (stamina),
honouring `Retry-After`, for at most `retry_max_s` from the first attempt: every wait is capped to
what remains of that budget, so the last attempt starts no later than `retry_max_s` and the whole
post ends within about `retry_max_s + timeout_s`. Other answers (4xx) are final. A reply that
cannot be delivered is counted (`failed`) and logged with its interaction id; nothing raises except
cancellation.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import httpx
import stamina
from httpx_aiohttp import AiohttpTransport

from config.settings import MODULE_NAME, VERSION
from observability import metrics, tracing
from observability.logs import get_logger, new_request_id, request_id_var


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class _RetryableStatus(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"router answered {status}")
        self.status, self.retry_after = status, retry_after


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
        return cls(settings.router_api_url, api_key=key.get_secret_value() if key else None,
                   timeout_s=settings.router_timeout_s, retry_max_s=settings.router_retry_max_s, **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post_reply(self, payload: dict[str, Any], *, interaction_id: str,
                         request_id: str | None) -> bool:
        """POST one reply; True once delivered (2xx), False when given up. Raises only CancelledError.

        Traced as `router.post_reply` with one `POST` client span per attempt, whose context the
        router receives as `traceparent` (docs/design.md "Tracing")."""
        with tracing.span("router.post_reply", attributes={"interaction.id": interaction_id}) as span:
            delivered = await self._post(payload, interaction_id, request_id)
            tracing.set_attributes({"router.delivered": delivered}, span)
            return delivered

    def _attempt_span(self, attempt: int) -> AbstractContextManager[tracing.Span]:
        """The client span of one HTTP attempt (HTTP semantic conventions); nothing when off."""
        if not tracing.enabled():
            return tracing.NO_SPAN
        attributes: dict[str, Any] = {"http.request.method": "POST", **self._url_attributes}
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        return tracing.span("POST", tracing.SpanKind.CLIENT, attributes)

    async def _post(self, payload: dict[str, Any], interaction_id: str, request_id: str | None) -> bool:
        headers = {"Content-Type": "application/json", "Idempotency-Key": interaction_id,
                   "X-Request-ID": request_id or request_id_var.get() or new_request_id()}
        if self.api_key:
            headers["X-Service-Key"] = self.api_key
        start = time.monotonic()
        attempts, status, error = 0, None, None

        def backoff(exc: Exception) -> bool | float:
            if not isinstance(exc, (_RetryableStatus, httpx.TransportError)):
                return False  # includes CancelledError: re-raised at once
            remaining = self.retry_max_s - (time.monotonic() - start)
            if remaining <= 0:
                return False
            wait = getattr(exc, "retry_after", None)
            if wait is None:
                wait = min(self.wait_max, self.wait_initial * 2 ** (attempts - 1)
                           + random.uniform(0, self.wait_jitter))
            return min(wait, remaining)

        async def attempt_once() -> None:
            nonlocal attempts, status
            attempts += 1
            if attempts > 1:
                metrics.router_posts_total.labels(result="retried").inc()
            with self._attempt_span(attempts) as span:
                traced = {**headers, **tracing.headers_for(span)} if tracing.enabled() else headers
                response = await self.http.post(self.url, json=payload, headers=traced)
                status = response.status_code
                if span.is_recording():
                    span.set_attribute("http.response.status_code", status)
                    if status >= 400:
                        tracing.error(span, str(status))
            if status == 429 or status >= 500:
                raise _RetryableStatus(status, parse_retry_after(response.headers.get("retry-after")))

        try:
            # Most posts succeed at once: the first attempt is made without building stamina's retry
            # state (~25 µs and ~47 objects of cyclic garbage per post, measured); after a retryable
            # failure and its backoff, stamina makes the rest within what remains of the budget.
            try:
                await attempt_once()
            except (_RetryableStatus, httpx.TransportError) as exc:
                wait = backoff(exc)
                if wait is False:
                    raise
                await asyncio.sleep(wait)
                remaining = self.retry_max_s - (time.monotonic() - start)
                async for attempt in stamina.retry_context(
                    on=backoff, attempts=None, timeout=max(remaining, 0.001),
                    wait_initial=self.wait_initial, wait_max=self.wait_max, wait_jitter=self.wait_jitter,
                ):
                    with attempt:
                        await attempt_once()
        except asyncio.CancelledError:
            get_logger("router_client").warning(
                "router post cancelled", action="router_post", interaction_id=interaction_id,
                attempts=attempts, result="cancelled")
            raise
        except _RetryableStatus as exc:
            error = str(exc)
        except httpx.TransportError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        except Exception as exc:  # noqa: BLE001 - an unexpected failure must not lose the reply silently
            status, error = None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        elapsed = time.monotonic() - start
        metrics.router_post_latency.observe(elapsed)
        if error is None and status is not None and 200 <= status < 300:
            metrics.router_posts_total.labels(result="delivered").inc()
            if attempts > 1:
                get_logger("router_client").info(
                    "reply delivered after retries", action="router_post", interaction_id=interaction_id,
                    status=status, attempts=attempts, result="delivered",
                    execution_time_ms=round(elapsed * 1000, 1))
            return True
        metrics.router_posts_total.labels(result="failed").inc()
        get_logger("router_client").error(
            "reply not delivered to the router", action="router_post", interaction_id=interaction_id,
            request_id=headers["X-Request-ID"], status=status, error=error or f"router answered {status}",
            attempts=attempts, result="failed", execution_time_ms=round(elapsed * 1000, 1))
        return False
