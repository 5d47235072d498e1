"""The one composition root: everything the service runs with, built from `Settings`.

`Runtime(settings)` builds every object (no I/O): one long-lived client per upstream (the LLM
providers, the router; communities' own endpoints get theirs from a bounded pool, llm/endpoints.py),
the breakers, the stores (in memory, or PostgreSQL with DATABASE_URL; with REDIS_URL the state
every replica shares at chat speed, §12: rate limits, dedupe keys, recent context), the rate
limiters, the reply pipeline, its workers and the reply outbox. `start()` starts the background
work (database pool, workers, outbox senders, health probes); `drain()` stops taking work and lets
what is accepted finish, replies delivered included (SHUTDOWN_GRACE_S); `stop()` drains, then
closes everything. The app runs `start()` in its
lifespan start-up and `stop()` in its lifespan shutdown (web/app.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from completions.catalog import ModelCatalog
from completions.limits import KeyLimits, KeyRateLimiter
from config.settings import Settings
from interactions.commands import CommandAnswerer
from interactions.outbox.outbox import Outbox
from interactions.outbox.store import MemoryReplies, ReplyStore
from interactions.queue.base import InteractionQueue
from interactions.queue.memory import MemoryQueue
from interactions.rate_limits import ReplyLimits, ReplyRateLimiter
from interactions.reply import ReplyPipeline
from interactions.workers import WorkerPool
from llm.breaker import CircuitBreaker
from llm.endpoints import EndpointPool
from llm.factory import build_provider
from llm.health import ProviderHealth
from llm.service import LLMService
from llm.types import Provider
from observability import metrics
from observability.logs import get_logger
from observability.tracing import Tracing
from router.client import RouterClient
from router.console import ConsoleSink
from router.sink import ReplySink
from storage.cipher import ConfigCipher
from storage.community_config import ConfigSource, MemoryConfigSource
from storage.context import ContextStore, MemoryContextStore
from storage.db import Database
from storage.usage import MemoryUsage, UsageStore

if TYPE_CHECKING:  # asyncpg is imported only with DATABASE_URL or REDIS_URL, redis only with REDIS_URL
    from interactions.queue.maintenance import Maintenance
    from interactions.queue.postgres import PgQueue
    from interactions.queue.shared_dedupe import SharedDedupe
    from storage.redis_link import RedisLink

log = get_logger(__name__)


@dataclass(slots=True)
class Postgres:
    """What PostgreSQL mode adds to run and close: the pool, the durable queue's background work
    (claims, leases, batched writes) and the periodic clean-up of the shared tables."""

    db: Database
    queue: PgQueue
    maintenance: Maintenance

    async def start(self) -> None:
        """Returns at once; the pool connects (and migrates) in the background."""
        await self.db.start()
        self.queue.start()
        self.maintenance.start()

    async def close(self) -> None:
        """After the workers stopped and the queue closed: flush pending usage, close the pool."""
        await self.maintenance.stop()
        await self.db.close()


def _on_transition(name: str, old: str, new: str) -> None:
    log.warning("circuit breaker transition", action="breaker_transition", provider=name, result=new,
                previous=old)


class Runtime:
    queue: InteractionQueue
    context: ContextStore
    config_source: ConfigSource
    usage: UsageStore
    replies: ReplyStore

    def __init__(self, settings: Settings, tracer_provider: Any = None, console: TextIO | None = None) -> None:
        """`tracer_provider`: an OpenTelemetry SDK TracerProvider to trace with (tests hand in one with
        the in-memory exporter); None: the OTEL_* variables decide (observability/tracing.py).
        `console`: where replies are printed when ROUTER_API_URL is unset (default stdout; `python
        app.py` hands in its log writer)."""
        s = self.settings = settings
        self.started_at = time.time()
        self.draining = False
        self.drain_cut_short = asyncio.Event()  # set: stop waiting for unfinished work (a second signal)
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.tracing = Tracing(s, tracer_provider, self.instance_id)
        self.cipher = ConfigCipher.from_settings(s)  # a bad CONFIG_ENCRYPTION_KEY stops start-up
        names = [s.ai_provider] + ([s.fallback_provider] if s.fallback_provider else [])
        self.providers: dict[str, Provider] = {name: build_provider(name, s) for name in names}
        self.breakers = {name: CircuitBreaker(name, s.breaker_failure_threshold, s.breaker_reset_s,
                                              on_transition=_on_transition) for name in names}
        self.health = ProviderHealth(self.providers, s.health_check_interval_s)
        self.endpoints = EndpointPool(s, s.community_endpoints_max, self.cipher.decrypt if self.cipher else None,
                                      on_transition=_on_transition)
        self.llm = LLMService(self.providers, self.breakers, self.health, s.ai_provider, s.fallback_provider,
                              s.max_concurrent_requests, self.endpoints)
        self.router: ReplySink = (RouterClient.from_settings(s) if s.router_api_url
                                  else ConsoleSink(console or sys.stdout))  # §6: unset, the console
        self.catalog = ModelCatalog(fetch_timeout_s=min(5.0, s.request_timeout))
        self.postgres: Postgres | None = None
        self.redis: RedisLink | None = self._redis_link()
        dedupe = self._shared_dedupe()
        if s.database_url is None:
            self.queue = MemoryQueue(s.max_queue, s.dedupe_window_s, shared=dedupe)
            self.context = MemoryContextStore(s.context_history_limit, s.context_ttl_s, s.context_max_conversations)
            self.config_source = MemoryConfigSource(s)
            self.usage = MemoryUsage()
            self.replies = MemoryReplies()
        else:
            self._build_durable(dedupe)
        metrics.track_queue(self.queue)  # ai_interaction_queue_depth reads queue.depth() when scraped
        self._share_context()
        limiter = self._reply_limits()
        self.completion_limiter = self._key_limits()
        self.pipeline = ReplyPipeline(s, self.config_source, self.context, limiter, self.llm, self.usage)
        self.outbox = Outbox(self.router, self.replies, self.queue, senders=s.outbox_senders, capacity=s.outbox_max,
                             max_age_s=s.interaction_max_age_s, poll_s=s.queue_poll_s,
                             remember=self.pipeline.remember)
        metrics.track_outbox(self.outbox)  # ai_outbox_depth, ai_outbox_oldest_seconds read when scraped
        self.workers = WorkerPool(self.queue, self.pipeline, self.outbox, s.worker_count)
        self.commands = CommandAnswerer(s, self.pipeline)  # POST /api/v1/execute (§11)
        self._stopped = False

    # --- the state several replicas share (§12) ---------------------------------------------------
    def _redis_link(self) -> RedisLink | None:
        s = self.settings
        if s.redis_url is None:
            return None
        from storage.redis_link import RedisLink

        link = RedisLink(s.redis_url.get_secret_value(), prefix=s.redis_key_prefix, timeout_s=s.redis_timeout_s,
                         probe_s=s.redis_probe_s, max_connections=s.redis_pool_max)
        metrics.track_redis(link)  # ai_redis_available
        return link

    def _shared_dedupe(self) -> SharedDedupe | None:
        if self.redis is None or self.settings.dedupe_window_s <= 0:
            return None
        from interactions.queue.shared_dedupe import SharedDedupe

        return SharedDedupe(self.redis, self.settings.dedupe_window_s)

    def _share_context(self) -> None:
        """With Redis: recent context read there first, over the store built above (§12)."""
        if self.redis is None:
            return
        from storage.redis_context import RedisContextStore

        s = self.settings
        self.context = RedisContextStore(self.redis, self.context, durable=self.postgres is not None,
                                         history_limit=s.context_history_limit, ttl_s=s.context_ttl_s)

    def _reply_limits(self) -> ReplyLimits:
        """In Redis when configured, else in PostgreSQL, else in this process: each one falls back
        to the next while it cannot answer, so N replicas never allow N times the limits (§12)."""
        s = self.settings
        limits: ReplyLimits = ReplyRateLimiter(s.user_cooldown_s, s.channel_max_replies_per_min)
        if self.postgres is not None or self.redis is not None:
            from interactions.shared_limits import PgReplyLimits, RedisReplyLimits

            if self.postgres is not None:
                limits = PgReplyLimits(self.postgres.db, limits)
            if self.redis is not None:
                limits = RedisReplyLimits(self.redis, limits)
        return limits

    def _key_limits(self) -> KeyLimits:
        """The OpenAI API's per-key limit, chosen like the reply limits."""
        s = self.settings
        limits: KeyLimits = KeyRateLimiter(s.completions_rate_per_min)
        if s.completions_rate_per_min > 0 and (self.postgres is not None or self.redis is not None):
            from completions.shared_limits import PgKeyLimits, RedisKeyLimits

            if self.postgres is not None:
                limits = PgKeyLimits(self.postgres.db, limits)
            if self.redis is not None:
                limits = RedisKeyLimits(self.redis, limits)
        return limits

    def _build_durable(self, dedupe: SharedDedupe | None) -> None:
        """The PostgreSQL stores (DATABASE_URL); asyncpg is imported only then."""
        from interactions.outbox.postgres import PgReplies
        from interactions.queue.maintenance import Maintenance
        from interactions.queue.postgres import PgQueue
        from storage.pg_config import PgConfigSource
        from storage.pg_context import PgContextStore
        from storage.pg_usage import PgUsage

        s = self.settings
        assert s.database_url is not None
        db = Database(s.database_url.get_secret_value(), min_size=s.db_pool_min, max_size=s.db_pool_max,
                      timeout=s.db_timeout_s)
        queue = self.queue = PgQueue(db, owner=self.instance_id, max_queue=s.max_queue,
                                     dedupe_window_s=s.dedupe_window_s, lease_s=s.queue_lease_s, poll_s=s.queue_poll_s,
                                     shared=dedupe)
        self.context = PgContextStore(db, s.context_history_limit, s.context_ttl_s)
        self.config_source = PgConfigSource(db, s, s.config_cache_ttl_s)
        usage = self.usage = PgUsage(db)
        self.replies = PgReplies(db, owner=self.instance_id, leases=queue.leases, lease_s=s.queue_lease_s)
        self.postgres = Postgres(db, queue, Maintenance(db, usage, s.queue_retention_s, s.context_ttl_s))

    async def start(self) -> None:
        """Returns at once; the database pool connects (and migrates) in the background."""
        s = self.settings
        self.tracing.start()
        if self.postgres is not None:
            await self.postgres.start()
        if self.redis is not None:
            self.redis.start()  # its first PING runs in the background
        self.workers.start()
        self.outbox.start()
        self.health.start()
        log.info("service started", action="startup", config=s.summary(), instance=self.instance_id,
                 store="postgresql" if self.postgres else "memory", shared_state="redis" if self.redis else None)
        if s.router_api_url is None:
            log.info("ROUTER_API_URL is not set: replies are printed on stdout, not posted", action="startup")
        if not s.router_service_key:
            log.warning("ROUTER_SERVICE_KEY is not set: the interaction and execute endpoints are open",
                        action="startup")

    async def drain(self) -> bool:
        """Stop accepting and let queued and in-flight interactions finish and their replies be
        delivered, within one SHUTDOWN_GRACE_S."""
        if self.draining:
            return True
        self.draining = True
        log.info("draining", action="shutdown_drain", pending=self.queue.depth() + self.workers.inflight,
                 outbox=self.outbox.depth())
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        drained = await self.workers.drain(self.settings.shutdown_grace_s, self.drain_cut_short)
        drained = await self.outbox.drain(max(0.0, deadline - time.monotonic()), self.drain_cut_short) and drained
        log.info("drain finished", action="shutdown_drain", result="complete" if drained else "timeout",
                 pending=self.queue.depth() + self.workers.inflight, outbox=self.outbox.depth())
        return drained

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.drain()
        await self.workers.stop()
        await self.outbox.stop()  # undelivered: failed (memory) or left for another instance (PostgreSQL)
        await self.pipeline.aclose()  # provider calls that outlived a command's deadline
        await self.health.stop()
        await self.catalog.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        await self.endpoints.aclose()
        await self.router.aclose()
        await self.queue.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.postgres is not None:
            await self.postgres.close()
        await self.tracing.stop()  # flush the last spans
        log.info("service stopped", action="shutdown")

    async def ready(self) -> tuple[bool, str | None]:
        if self.draining:
            return False, "draining"
        if not await self.queue.reachable():
            return False, "store unreachable"
        return True, None

    def notes(self) -> list[str]:
        """What /ready says while still ready: Redis unavailable, state served without it."""
        if self.redis is None or self.redis.available:
            return []
        if self.postgres is not None:
            return ["redis unavailable: rate limits, dedupe keys and recent context are served from "
                    "PostgreSQL until it answers again"]
        return ["redis unavailable: rate limits, dedupe keys and recent context are kept in this process "
                "until it answers again (limits count per replica meanwhile)"]
