"""The one Redis client (REDIS_URL): every call bounded, and whether Redis is usable right now.

Redis holds what every replica must share at chat speed: rate-limit windows, dedupe keys, recent
context (docs/design.md, "Several replicas"). Its users call it through `RedisLink.call`:

- bounded: the socket connect/read timeouts, the wait for a pooled connection and an overall
  deadline are all REDIS_TIMEOUT_S (default 0.2 s), and redis-py's own retries are off, so a hung
  or unreachable Redis costs one call at most that long;
- any failure marks Redis unavailable and raises `RedisUnavailable`; the caller then serves the
  operation from its fallback (PostgreSQL or this process's state) and counts it in
  `ai_redis_fallbacks_total`. While unavailable, calls fail at once without touching the network;
- a background probe (owned: started by `start()`, cancelled and awaited by `aclose()`) PINGs every
  REDIS_PROBE_S while Redis is unavailable, each time after closing the pooled connections (after
  a Redis restart they are dead, and each would fail one call). When it answers, the recovery hooks
  run first (the context store drops what it could not update meanwhile), then calls go to Redis again.

Redis is assumed available at start: the probe's first PING runs at once and says otherwise.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from observability import metrics
from observability.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
# What an unreachable, hung, restarting or refusing Redis looks like to a caller.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class RedisUnavailable(Exception):
    """Redis could not serve this call (down, slow, or not yet back): use the fallback."""


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a Redis error for logs and /ready."""
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RedisLink:
    def __init__(self, url: str, *, prefix: str, timeout_s: float, probe_s: float, max_connections: int) -> None:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout_s, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self.client = Redis.from_pool(pool)  # closes the pool with it
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.probe_s = probe_s
        self.available = True
        self.last_error: str | None = None
        self.down_since: float | None = None  # time.monotonic() when it became unavailable
        self._went_down = asyncio.Event()
        self._recoveries: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def key(self, kind: str, name: str) -> str:
        """This deployment's key of one kind (`rl`, `dd`, `ctx`, …): REDIS_KEY_PREFIX + kind + name."""
        return f"{self.prefix}{kind}:{name}"

    def on_recovery(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` (through `bounded`) when Redis is back, before calls use it again."""
        self._recoveries.append(hook)

    # --- calls -----------------------------------------------------------------------------------
    async def call(self, use: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis operation for `use` (a label of ai_redis_fallbacks_total), bounded; raises
        RedisUnavailable (counted as a fallback) when Redis is unavailable or the call fails."""
        if not self.available:
            metrics.redis_fallbacks_total.labels(use=use).inc()
            raise RedisUnavailable()
        try:
            return await self.bounded(operation)
        except REDIS_ERRORS as exc:
            self.mark_down(exc, use)
            metrics.redis_fallbacks_total.labels(use=use).inc()
            raise RedisUnavailable() from None

    async def bounded(self, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation()` under the overall deadline (REDIS_TIMEOUT_S); Redis errors propagate."""
        async with asyncio.timeout(self.timeout_s):
            return await operation()

    def mark_down(self, exc: BaseException, use: str) -> None:
        self.last_error = describe(exc)
        if self.available:
            self.available = False
            self.down_since = time.monotonic()
            self._went_down.set()
            log.error("Redis unavailable: rate limits, dedupe keys and recent context fall back to "
                      "PostgreSQL or this process until it answers again", action="redis", result="down",
                      operation=use, error=self.last_error)

    def snapshot(self) -> dict[str, Any]:
        """For /ready: usable or not, since when, the last error."""
        down_for = None if self.down_since is None else round(time.monotonic() - self.down_since, 1)
        return {"available": self.available, "down_for_s": down_for, "error": self.last_error}

    # --- lifecycle and the probe -----------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="redis-probe")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await asyncio.wait_for(self.client.aclose(), timeout=max(1.0, self.timeout_s))
        except (TimeoutError, *REDIS_ERRORS) as exc:
            log.warning("Redis client not closed cleanly", action="shutdown", error=describe(exc))

    async def _ping(self, fresh: bool = False) -> BaseException | None:
        """One PING; `fresh`: on a new connection (pooled ones may be dead after a Redis restart)."""
        try:
            if fresh:
                await self.bounded(self.client.connection_pool.disconnect)
            await self.bounded(self.client.ping)
        except REDIS_ERRORS as exc:
            return exc
        return None

    async def _recover(self) -> BaseException | None:
        """Redis answered: run the recovery hooks; the first failure ends the attempt."""
        for hook in self._recoveries:
            try:
                await hook()
            except REDIS_ERRORS as exc:
                return exc
            except Exception as exc:  # a bug in a hook must not keep Redis unused forever
                log.error("Redis recovery step failed", action="redis", result="error",
                          error=describe(exc), exc_info=exc)
        return None

    async def _watch(self) -> None:
        failed = await self._ping()
        if failed is not None:
            self.mark_down(failed, "probe")
        while True:
            if self.available:
                await self._went_down.wait()
                continue
            await asyncio.sleep(self.probe_s)
            failed = await self._ping(fresh=True) or await self._recover()
            if failed is not None:
                self.last_error = describe(failed)
                continue
            down_for = round(time.monotonic() - (self.down_since or time.monotonic()), 1)
            self._went_down.clear()
            self.available, self.down_since, self.last_error = True, None, None
            log.info("Redis reachable again: shared state back in Redis", action="redis", result="up",
                     down_for_s=down_for)
