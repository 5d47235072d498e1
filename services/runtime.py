"""Everything the service runs with, created once at start-up and closed once at shutdown.

One long-lived client per upstream (providers, router), the queue, the context store, the
configuration source, usage, the rate limiter, the workers and the health prober.
`Runtime.start()` / `Runtime.stop()` are the only places that create or close them. With
DATABASE_URL the queue, context, configuration and usage live in PostgreSQL (storage/), else
in this process.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from config.settings import Settings
from providers.base import Provider
from providers.factory import build_provider
from services import metrics
from services.breaker import CircuitBreaker
from services.community_config import MemoryConfigSource
from services.config_cipher import ConfigCipher
from services.context_store import MemoryContextStore
from services.interaction_queue import MemoryQueue
from services.llm import LLMService
from services.logs import get_logger
from services.pipeline import Pipeline
from services.provider_health import ProviderHealth
from services.rate_limits import ReplyRateLimiter
from services.router_client import RouterClient
from services.usage import MemoryUsage
from services.workers import WorkerPool

log = get_logger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.draining = False
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.cipher = ConfigCipher.from_settings(settings)  # a bad CONFIG_ENCRYPTION_KEY stops start-up
        self.providers: dict[str, Provider] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.queue: Any = None
        self.context: Any = None
        self.config_source: Any = None
        self.usage: Any = None
        self.stores: Any = None  # storage.wiring.DurableStores with DATABASE_URL
        self.router: RouterClient | None = None
        self.health: ProviderHealth | None = None
        self.llm: LLMService | None = None
        self.workers: WorkerPool | None = None
        self._stopped = False

    def _on_transition(self, name: str, old: str, new: str) -> None:
        log.warning("circuit breaker transition", action="breaker_transition", provider=name,
                    result=new, previous=old)

    async def start(self) -> None:
        s = self.settings
        names = [s.ai_provider] + ([s.fallback_provider] if s.fallback_provider else [])
        for name in names:
            self.providers[name] = build_provider(name, s)
            self.breakers[name] = CircuitBreaker(name, s.breaker_failure_threshold, s.breaker_reset_s,
                                                 on_transition=self._on_transition)
        self.health = ProviderHealth(self.providers, s.health_check_interval_s)
        self.llm = LLMService(self.providers, self.breakers, self.health, s.ai_provider,
                              s.fallback_provider, s.max_concurrent_requests)
        self.router = RouterClient.from_settings(s)
        await self._open_stores()
        metrics.track_queue(self.queue)  # ai_interaction_queue_depth reads queue.depth() when scraped
        limiter = ReplyRateLimiter(s.user_cooldown_s, s.channel_max_replies_per_min)
        pipeline = Pipeline(s, self.config_source, self.context, limiter, self.llm, self.router, self.usage)
        self.workers = WorkerPool(self.queue, pipeline, s.worker_count)
        self.workers.start()
        self.health.start()
        log.info("service started", action="startup", config=s.summary(), instance=self.instance_id,
                 store="postgresql" if self.stores else "memory")
        if not s.router_service_key:
            log.warning("ROUTER_SERVICE_KEY is not set: the interaction endpoint is open",
                        action="startup")

    async def _open_stores(self) -> None:
        s = self.settings
        if s.database_url is None:
            self.queue = MemoryQueue(s.max_queue, s.dedupe_window_s)
            self.context = MemoryContextStore(s.context_history_limit, s.context_ttl_s,
                                              s.context_max_conversations)
            self.config_source = MemoryConfigSource(s)
            self.usage = MemoryUsage()
            return
        from storage.wiring import build_durable  # asyncpg only when PostgreSQL is configured

        self.stores = build_durable(s, self.instance_id)
        self.queue, self.context = self.stores.queue, self.stores.context
        self.config_source, self.usage = self.stores.config_source, self.stores.usage
        await self.stores.start()

    async def drain(self) -> bool:
        """Stop accepting and let queued and in-flight interactions finish (SHUTDOWN_GRACE_S)."""
        if self.draining:
            return True
        self.draining = True
        pending = self.queue.depth() + self.workers.inflight if self.workers else 0
        log.info("draining", action="shutdown_drain", pending=pending)
        drained = await self.workers.drain(self.settings.shutdown_grace_s) if self.workers else True
        log.info("drain finished", action="shutdown_drain", result="complete" if drained else "timeout",
                 pending=self.queue.depth() + (self.workers.inflight if self.workers else 0))
        return drained

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.drain()
        if self.workers:
            await self.workers.stop()
        if self.health:
            await self.health.stop()
        for provider in self.providers.values():
            await provider.aclose()
        if self.router:
            await self.router.aclose()
        if self.queue:
            await self.queue.aclose()
        if self.stores:
            await self.stores.close()
        log.info("service stopped", action="shutdown")

    async def ready(self) -> tuple[bool, str | None]:
        if self.draining:
            return False, "draining"
        if self.queue is None or not await self.queue.reachable():
            return False, "store unreachable"
        return True, None
