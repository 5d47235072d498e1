"""The provider calls of both paths: breaker per provider, a cap on concurrent calls, failover.

`complete()` tries the primary provider and, when it fails, the fallback provider if one is
configured and usable (breaker not open, last health probe not failed). It raises the last
`ProviderError` when nobody answered; deciding on canned replies is the caller's business.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

from providers.base import ChatRequest, ChatResult, Provider, ProviderError, ProviderUnavailable, StreamChunk
from services import metrics
from services.breaker import CircuitBreaker
from services.provider_health import ProviderHealth


class LLMService:
    def __init__(self, providers: dict[str, Provider], breakers: dict[str, CircuitBreaker],
                 health: ProviderHealth, primary: str, fallback: str | None,
                 max_concurrent: int) -> None:
        self.providers = providers
        self.breakers = breakers
        self.health = health
        self.primary = primary
        self.fallback = fallback
        self._slots = asyncio.Semaphore(max_concurrent)

    def usable(self, name: str) -> bool:
        return self.breakers[name].available and self.health.status(name) is not False

    def order(self, preferred: str | None = None) -> list[str]:
        first = preferred or self.primary
        names = [first]
        for other in (self.primary, self.fallback):
            if other and other not in names and other in self.providers:
                names.append(other)
        return names

    async def complete(self, request: ChatRequest, preferred: str | None = None,
                       failover: bool = True) -> ChatResult:
        names = self.order(preferred) if failover else [preferred or self.primary]
        error: ProviderError | None = None
        for index, name in enumerate(names):
            if index > 0 and not self.usable(name):
                continue
            try:
                return await self._call(name, request)
            except ProviderError as exc:
                error = exc
        assert error is not None
        raise error

    async def _call(self, name: str, request: ChatRequest) -> ChatResult:
        provider = self.providers[name]
        breaker = self.breakers[name]
        if not breaker.available:  # fail fast: don't queue for a slot only to be refused
            raise ProviderUnavailable(f"{name} circuit breaker is open", provider=name)
        model = request.model or provider.default_model
        async with self._slots:
            metrics.inflight_provider_calls.inc()
            started = time.perf_counter()
            try:
                async with breaker.guard():
                    result = await provider.chat(request)
            except ProviderError as exc:
                metrics.provider_requests_total.labels(name, model, exc.kind).inc()
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a provider bug must not escape as success or crash a worker
                metrics.provider_requests_total.labels(name, model, "error").inc()
                raise ProviderError(f"{name} failed: {type(exc).__name__}", provider=name) from exc
            finally:
                metrics.inflight_provider_calls.dec()
        metrics.provider_latency.labels(name, result.model).observe(time.perf_counter() - started)
        metrics.provider_requests_total.labels(name, result.model, "success").inc()
        metrics.tokens_total.labels(name, result.model, "prompt").inc(result.prompt_tokens)
        metrics.tokens_total.labels(name, result.model, "completion").inc(result.completion_tokens)
        return result

    async def stream(self, request: ChatRequest, preferred: str | None = None) -> AsyncIterator[StreamChunk]:
        """Stream from one provider under its breaker and a concurrency slot (no mid-stream failover)."""
        name = preferred or self.primary
        provider = self.providers[name]
        breaker = self.breakers[name]
        if not breaker.available:
            raise ProviderUnavailable(f"{name} circuit breaker is open", provider=name)
        model = request.model or provider.default_model
        async with self._slots:
            metrics.inflight_provider_calls.inc()
            started = time.perf_counter()
            first = True
            try:
                async with breaker.guard():
                    async for chunk in provider.stream(request):
                        if first and chunk.text:
                            metrics.provider_ttft.labels(name).observe(time.perf_counter() - started)
                            first = False
                        if chunk.finish_reason:
                            model = chunk.model or model
                            metrics.tokens_total.labels(name, model, "prompt").inc(chunk.prompt_tokens)
                            metrics.tokens_total.labels(name, model, "completion").inc(chunk.completion_tokens)
                        yield chunk
            except ProviderError as exc:
                metrics.provider_requests_total.labels(name, model, exc.kind).inc()
                raise
            finally:
                metrics.inflight_provider_calls.dec()
        metrics.provider_latency.labels(name, model).observe(time.perf_counter() - started)
        metrics.provider_requests_total.labels(name, model, "success").inc()
