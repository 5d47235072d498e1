"""The provider calls of both paths: breaker per provider, a cap on concurrent calls, failover.

Both paths hand over attempt lists, [(provider, request), ...] — `attempts()` builds the usual
one: the preferred (else primary) provider, then the fallback provider. `complete()` answers with
the first attempt that succeeds, trying later ones only when usable (breaker not open, last health
probe not failed), and raises the first attempt's `ProviderError` when nobody answered; deciding on
canned replies is the caller's business. `stream_first()` fails over only BEFORE the first chunk. Every streamed call is counted exactly once in
`ai_provider_requests_total` (success, an error kind, or `cancelled` when the consumer stopped).

A community's own endpoint (llm/endpoints.py) is an attempt like a provider name: `attempts(...,
endpoint=)` puts it first and the service's providers after it (they answer with their own default
model); its call runs on the pooled client under that client's breaker and the same concurrency cap.

Every call runs under `_guarded()`: the endpoint's breaker, then the model's (llm/breaker.py
ModelBreakers: a model's quota or rate limit never opens the breaker of the provider's other
models), and an upstream that rejects our own configuration (ProviderMisconfigured) is logged
once per endpoint, as an error, until it answers again.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, replace
from typing import AsyncIterator

from config.community import CommunityEndpoint
from llm.types import (ChatRequest, ChatResult, Provider, ProviderError, ProviderMisconfigured,
                       ProviderUnavailable, StreamChunk)
from observability import metrics
from observability.logs import get_logger
from llm import spans
from llm.breaker import CircuitBreaker, ModelBreakers
from llm.endpoints import EndpointPool
from llm.health import ProviderHealth

log = get_logger(__name__)

# (a provider name or, for complete() only, a community endpoint; the request for it)
Attempt = tuple[str | CommunityEndpoint, ChatRequest]


@dataclass(slots=True)
class StreamStats:
    """Bookkeeping of one streamed completion, filled in by `stream()` / `stream_first()`."""

    provider: str | None = None  # the provider that produced the first chunk
    provider_wait_s: float = 0.0  # time spent waiting on providers before their first chunk


class LLMService:
    def __init__(self, providers: dict[str, Provider], breakers: dict[str, CircuitBreaker],
                 health: ProviderHealth, primary: str, fallback: str | None,
                 max_concurrent: int, endpoints: EndpointPool | None = None) -> None:
        self.providers = providers
        self.endpoints = endpoints
        self.breakers = breakers
        self.health = health
        self.primary = primary
        self.fallback = fallback
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self.active_streams = 0  # provider streams open right now
        self.model_breakers = ModelBreakers()
        self._misconfigured: set[str] = set()  # endpoints whose refusal of our configuration was logged

    def usable(self, name: str | CommunityEndpoint) -> bool:
        if isinstance(name, CommunityEndpoint):
            return self.endpoints is not None and self.endpoints.usable(name)
        return self.breakers[name].available and self.health.status(name) is not False

    def order(self, preferred: str | None = None) -> list[str]:
        first = preferred or self.primary
        names = [first]
        for other in (self.primary, self.fallback):
            if other and other not in names and other in self.providers:
                names.append(other)
        return names

    def attempts(self, request: ChatRequest, preferred: str | None = None,
                 endpoint: CommunityEndpoint | None = None) -> list[Attempt]:
        """The same request to each provider in failover order (`preferred` first, if configured).
        With a community `endpoint` (and the pool), it goes first; the providers after it get the
        request with their own default model (the community's model names one of its endpoint)."""
        if endpoint is None or self.endpoints is None:
            return [(name, request) for name in self.order(preferred)]
        service = replace(request, model=None)
        return [(endpoint, request)] + [(name, service) for name in self.order(preferred)]

    async def complete(self, attempts: list[Attempt], spent: list[float] | None = None) -> ChatResult:
        """The first attempt that answers (later ones only when usable). Raises the FIRST attempt's
        error when none answered. `spent` collects the seconds spent inside each provider call."""
        error: ProviderError | None = None
        for index, (name, request) in enumerate(attempts):
            if index > 0 and not self.usable(name):
                continue
            try:
                return await self._call(name, request, spent)
            except ProviderError as exc:
                error = error or exc
        assert error is not None
        raise error

    async def _call(self, target: str | CommunityEndpoint, request: ChatRequest,
                    spent: list[float] | None = None) -> ChatResult:
        async with self._resolve(target) as (name, provider, breaker):
            return await self._call_provider(name, provider, breaker, request, spent)

    @asynccontextmanager
    async def _resolve(self, target: str | CommunityEndpoint
                       ) -> AsyncIterator[tuple[str, Provider, CircuitBreaker]]:
        """(name, provider, breaker) of one attempt: a service provider, or a community endpoint's
        pooled client, leased for the call (never closed under it)."""
        if not isinstance(target, CommunityEndpoint):
            yield target, self.providers[target], self.breakers[target]
            return
        assert self.endpoints is not None
        async with self.endpoints.lease(target) as client:
            yield client.name, client.provider, client.breaker

    async def _call_provider(self, name: str, provider: Provider, breaker: CircuitBreaker, request: ChatRequest,
                             spent: list[float] | None = None) -> ChatResult:
        model = request.model or provider.default_model
        with spans.chat_span(provider.name, model, request) as span:  # GenAI attributes (llm/spans.py)
            result = await self._call_guarded(name, provider, breaker, spans.traced(request, span), model, spent)
            spans.record_result(span, result)
        return result

    async def _call_guarded(self, name: str, provider: Provider, breaker: CircuitBreaker, request: ChatRequest,
                            model: str, spent: list[float] | None) -> ChatResult:
        if not breaker.available:  # fail fast: don't queue for a slot only to be refused
            raise ProviderUnavailable(f"{name} circuit breaker is open", provider=name)
        async with self._slots:
            metrics.inflight_provider_calls.inc()
            started = time.perf_counter()
            try:
                async with self._guarded(breaker, model):
                    try:
                        result = await provider.chat(request)
                    finally:
                        if spent is not None:
                            spent.append(time.perf_counter() - started)
            except ProviderError as exc:
                metrics.provider_requests_total.labels(name, metrics.model_label(model), exc.kind).inc()
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a provider bug must not escape as success or crash a worker
                metrics.provider_requests_total.labels(name, metrics.model_label(model), "error").inc()
                raise ProviderError(f"{name} failed: {type(exc).__name__}", provider=name) from exc
            finally:
                metrics.inflight_provider_calls.dec()
        label = metrics.model_label(result.model, reported=True)
        metrics.provider_latency.labels(name, label).observe(time.perf_counter() - started)
        metrics.provider_requests_total.labels(name, label, "success").inc()
        metrics.tokens_total.labels(name, label, "prompt").inc(result.prompt_tokens)
        metrics.tokens_total.labels(name, label, "completion").inc(result.completion_tokens)
        return result

    async def stream_first(self, attempts: list[Attempt],
                           stats: StreamStats | None = None) -> AsyncIterator[StreamChunk]:
        """Stream from the first attempt that produces a chunk; fail over only BEFORE it.

        Later attempts are tried only when usable. With no chunk from anyone, raises the FIRST
        attempt's error. After the first chunk, a failure propagates (no mid-stream failover).
        """
        stats = stats if stats is not None else StreamStats()
        error: ProviderError | None = None
        for index, (name, request) in enumerate(attempts):
            if index > 0 and not self.usable(name):
                continue
            async with aclosing(self.stream(request, preferred=name, stats=stats)) as chunks:
                try:
                    first = await anext(chunks)
                except StopAsyncIteration:
                    error = error or ProviderError(f"{name} stream ended without output", provider=name,
                                                   kind="garbage")
                    continue
                except ProviderError as exc:
                    error = error or exc
                    continue
                stats.provider = name
                yield first
                async for chunk in chunks:
                    yield chunk
                return
        assert error is not None
        raise error

    async def stream(self, request: ChatRequest, preferred: str | None = None,
                     stats: StreamStats | None = None) -> AsyncIterator[StreamChunk]:
        """Stream from one provider under its breaker and a concurrency slot (no mid-stream failover).

        Close it (`aclose()`) when stopping early: that closes the provider's stream and frees the slot.
        """
        name = preferred or self.primary
        provider = self.providers[name]
        breaker = self.breakers[name]
        # GenAI attributes (llm/spans.py); not made the current span, so it never leaks into the consumer
        with spans.chat_span(provider.name, request.model or provider.default_model, request) as span:
            request = spans.traced(request, span)
            if not breaker.available:
                raise ProviderUnavailable(f"{name} circuit breaker is open", provider=name)
            label = metrics.model_label(request.model or provider.default_model)
            async with self._slots:
                metrics.inflight_provider_calls.inc()
                self.active_streams += 1
                started = time.perf_counter()
                first = True
                result = "cancelled"  # unless it ends otherwise: the consumer stopped early
                try:
                    async with self._guarded(breaker, request.model or provider.default_model), \
                            aclosing(provider.stream(request)) as parts:
                        async for chunk in parts:
                            if first:
                                first = False
                                if stats is not None:
                                    stats.provider_wait_s += time.perf_counter() - started
                                if chunk.has_output:  # text, a tool call or logprobs
                                    metrics.provider_ttft.labels(name).observe(time.perf_counter() - started)
                            if chunk.finish_reason:
                                spans.record_result(span, chunk)
                                if chunk.model:
                                    label = metrics.model_label(chunk.model, reported=True)
                                metrics.tokens_total.labels(name, label, "prompt").inc(chunk.prompt_tokens)
                                metrics.tokens_total.labels(name, label, "completion").inc(chunk.completion_tokens)
                            yield chunk
                    result = "success"
                except ProviderError as exc:
                    result = exc.kind
                    raise
                except Exception as exc:  # a provider bug must not escape as success or crash the caller
                    result = "error"
                    raise ProviderError(f"{name} failed: {type(exc).__name__}", provider=name) from exc
                finally:
                    if first and stats is not None:
                        stats.provider_wait_s += time.perf_counter() - started
                    self.active_streams -= 1
                    metrics.inflight_provider_calls.dec()
                    metrics.provider_requests_total.labels(name, label, result).inc()
                    if result == "success":
                        metrics.provider_latency.labels(name, label).observe(time.perf_counter() - started)

    @asynccontextmanager
    async def _guarded(self, breaker: CircuitBreaker, model: str) -> AsyncIterator[None]:
        """The endpoint's breaker (endpoint-scoped failures), then `model`'s (model-scoped ones)."""
        try:
            async with breaker.guard(), self.model_breakers.guard(breaker, model):
                yield
        except ProviderMisconfigured as exc:
            self._report_misconfigured(breaker.name, exc)
            raise
        else:
            self._misconfigured.discard(breaker.name)

    def _report_misconfigured(self, endpoint: str, exc: ProviderMisconfigured) -> None:
        """Once per endpoint until it answers again: callers get 502, chat gets the fallback."""
        if endpoint in self._misconfigured:
            return
        self._misconfigured.add(endpoint)
        log.error("the LLM provider rejects this service's own configuration (its credentials, headers or "
                  "URL): fix the provider's settings (docs/configuration.md); logged once until it answers",
                  action="provider_misconfigured", provider=exc.provider, status=exc.status,
                  error=str(exc)[:300])
