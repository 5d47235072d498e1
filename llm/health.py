"""Provider health, probed in the background and cached: no endpoint calls a provider to report it."""

from __future__ import annotations

import asyncio
import time

from llm.types import Provider
from observability.logs import get_logger

log = get_logger(__name__)


class ProviderHealth:
    def __init__(self, providers: dict[str, Provider], interval_s: float) -> None:
        self.providers = providers
        self.interval_s = interval_s
        self._status: dict[str, bool | None] = {name: None for name in providers}
        self._checked_at: dict[str, float | None] = {name: None for name in providers}
        self._task: asyncio.Task[None] | None = None

    def status(self, name: str) -> bool | None:
        """True healthy, False failed its last probe, None not probed yet."""
        return self._status.get(name)

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = time.time()
        return {
            name: {
                "healthy": self._status[name],
                "checked_s_ago": None if self._checked_at[name] is None else round(now - self._checked_at[name], 1),
            }
            for name in self.providers
        }

    async def probe_all(self) -> None:
        results = await asyncio.gather(*(p.health() for p in self.providers.values()), return_exceptions=True)
        for name, result in zip(self.providers, results):
            healthy = result is True
            if self._status[name] != healthy and (self._status[name] is not None or not healthy):
                log.warning("provider health changed", action="provider_health", provider=name,
                            result="healthy" if healthy else "unhealthy")
            self._status[name] = healthy
            self._checked_at[name] = time.time()

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_all()
            except Exception as exc:  # keep probing whatever happens
                log.error("health probe failed", action="provider_health", error=repr(exc))
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="provider-health")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
