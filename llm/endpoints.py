"""The long-lived clients of community endpoints (§5, §7): a bounded set, one client and one
circuit breaker per (provider, base_url, api key fingerprint).

    async with pool.lease(endpoint) as client:   # client.provider, client.breaker, client.name
        ...                                      # LLMService runs the call (its concurrency cap)

- **Bounded**: at most COMMUNITY_ENDPOINTS_MAX clients, least recently used evicted first; a
  client unused for IDLE_CLOSE_S is closed too (so the client of a rotated key goes away).
- **Closed, but never under a call**: an evicted client is closed once its in-flight calls have
  finished (`inflight` counts the leases); `aclose()` at shutdown closes every one.
- **Key rotation**: the fingerprint is a digest of the stored, encrypted key, so a new key (a PUT)
  means a new client; the old one is closed when idle or evicted. The key is decrypted only to
  build the client.
- **Validated when built**: a community's `base_url` is checked again (llm/upstream.py, DNS
  included) each time its client is built, so rows stored before the rules, or hosts since removed
  from ALLOWED_UPSTREAM_HOSTS, are never called. A refused endpoint (bad URL, key that cannot be
  decrypted) is logged once per REFUSAL_TTL_S and raises ProviderUnavailable: the caller fails
  over to the service's own providers.
- **Names** (breaker, /ready, /status, metrics, logs): `provider@host[:port]#digest`, never the key,
  the credentials, the path or the query of the URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

from cachetools import TTLCache

from config.community import CommunityEndpoint
from llm.breaker import CircuitBreaker, Transition
from llm.factory import build_endpoint_provider
from llm.types import Provider, ProviderUnavailable
from llm.upstream import Resolver, allowed_hosts, system_resolver, url_problem
from observability.logs import get_logger

log = get_logger(__name__)

IDLE_CLOSE_S = 600.0
REFUSAL_TTL_S = 60.0

Key = tuple[str, str | None, str | None]  # (provider, base_url, fingerprint of the encrypted key)


def fingerprint(api_key_encrypted: str | None) -> str | None:
    return hashlib.sha256(api_key_encrypted.encode()).hexdigest()[:16] if api_key_encrypted else None


def endpoint_key(endpoint: CommunityEndpoint) -> Key:
    return endpoint.provider, endpoint.base_url, fingerprint(endpoint.api_key_encrypted)


@dataclass(eq=False, slots=True)
class EndpointClient:
    name: str
    provider: Provider
    breaker: CircuitBreaker
    last_used: float
    inflight: int = 0  # calls holding a lease
    retired: bool = False  # evicted (or shutting down): close when `inflight` reaches 0
    closed: bool = False


class EndpointPool:
    def __init__(self, settings: Any, max_size: int, decrypt: Callable[[str], str] | None,
                 on_transition: Transition | None = None, resolve: Resolver = system_resolver,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.settings = settings
        self.max_size = max_size
        self._decrypt = decrypt
        self._on_transition = on_transition
        self._resolve = resolve
        self._clock = clock
        self._allowed = allowed_hosts(settings.allowed_upstream_hosts)
        self._service_providers = {p for p in (settings.ai_provider, settings.fallback_provider) if p}
        self._clients: OrderedDict[Key, EndpointClient] = OrderedDict()  # least recently used first
        self._open: set[EndpointClient] = set()  # built and not closed yet (live or retired)
        self._refused: TTLCache[Key, str] = TTLCache(max(64, 4 * max_size), REFUSAL_TTL_S, timer=clock)
        self._closing: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- reading -------------------------------------------------------------------------------
    def name(self, endpoint: CommunityEndpoint) -> str:
        """`provider@host[:port]#digest`: readable, one per client, no secret in it."""
        url = endpoint.base_url or (self.settings.ollama_url if endpoint.provider == "ollama"
                                    else self.settings.waddleai_base_url)
        try:
            parts = urlsplit(url)
            host = parts.hostname or "?"
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            host, port = "?", ""
        if ":" in host:
            host = f"[{host}]"
        digest = hashlib.sha256(repr(endpoint_key(endpoint)).encode()).hexdigest()[:8]
        return f"{endpoint.provider}@{host}{port}#{digest}"

    def clients(self) -> list[EndpointClient]:
        """The live clients, least recently used first."""
        return list(self._clients.values())

    def snapshot(self) -> dict[str, dict[str, object]]:
        """For /ready and /status: each live client's breaker state and calls in flight."""
        return {c.name: {"breaker": c.breaker.state, "inflight": c.inflight} for c in self._clients.values()}

    def usable(self, endpoint: CommunityEndpoint) -> bool:
        key = endpoint_key(endpoint)
        if key in self._refused:
            return False
        client = self._clients.get(key)
        return client is None or client.breaker.available

    # --- leasing -------------------------------------------------------------------------------
    @asynccontextmanager
    async def lease(self, endpoint: CommunityEndpoint) -> AsyncIterator[EndpointClient]:
        """The endpoint's client (built on first use), not closed before this block ends.
        Raises ProviderUnavailable when the endpoint may not be used or the pool is closed."""
        client = await self._acquire(endpoint)
        client.inflight += 1
        try:
            yield client
        finally:
            client.inflight -= 1
            client.last_used = self._clock()
            if client.retired and client.inflight == 0:
                self._close_soon(client)

    async def _acquire(self, endpoint: CommunityEndpoint) -> EndpointClient:
        key = endpoint_key(endpoint)
        self._sweep_idle()
        if (client := self._hit(key)) is not None:
            return client
        name = self.name(endpoint)
        if (refusal := self._refused.get(key)) is not None:
            raise ProviderUnavailable(f"{name} is not used: {refusal}", provider=name)
        self._check_open(name)
        refusal, api_key = await self._prepare(endpoint)
        if (client := self._hit(key)) is not None:  # built by another call meanwhile
            return client
        self._check_open(name)  # closed while this call was resolving the host
        provider: Provider | None = None
        if refusal is None:
            try:
                provider = build_endpoint_provider(endpoint.provider, self.settings, endpoint.base_url, api_key)
            except Exception as exc:  # a URL the SDK cannot use: refused like a bad one
                refusal = f"client could not be built ({type(exc).__name__})"
        if provider is None:
            self._refused[key] = refusal
            log.warning("community endpoint not used: calls go to the service's providers",
                        action="community_endpoint", endpoint=name, result="refused", error=refusal)
            raise ProviderUnavailable(f"{name} is not used: {refusal}", provider=name)
        breaker = CircuitBreaker(name, self.settings.breaker_failure_threshold, self.settings.breaker_reset_s,
                                 on_transition=self._on_transition)
        client = self._clients[key] = EndpointClient(name, provider, breaker, last_used=self._clock())
        self._open.add(client)
        log.info("community endpoint client built", action="community_endpoint", endpoint=name, result="built",
                 clients=len(self._clients))
        while len(self._clients) > self.max_size:
            self._retire(next(iter(self._clients)))
        return client

    def _check_open(self, name: str) -> None:
        if self._stopped:
            raise ProviderUnavailable(f"{name}: community endpoints are closed (shutting down)", provider=name)

    def _hit(self, key: Key) -> EndpointClient | None:
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            client.last_used = self._clock()
        return client

    async def _prepare(self, endpoint: CommunityEndpoint) -> tuple[str | None, str | None]:
        """(why the endpoint may not be used, or None; the decrypted api key)."""
        if endpoint.base_url is None and endpoint.provider not in self._service_providers:
            return f"provider {endpoint.provider} is not configured on this service and no base_url is set", None
        api_key = None
        if endpoint.api_key_encrypted:
            if self._decrypt is None:
                return "an api key is stored but CONFIG_ENCRYPTION_KEY is not set", None
            try:
                api_key = self._decrypt(endpoint.api_key_encrypted)
            except ValueError:
                return "the stored api key cannot be decrypted with CONFIG_ENCRYPTION_KEY", None
        if endpoint.base_url is not None:
            if problem := await url_problem(endpoint.base_url, self._allowed, self._resolve):
                return f"base_url {problem}", None
        return None, api_key

    # --- closing -------------------------------------------------------------------------------
    def _sweep_idle(self) -> None:
        """Retire clients unused for IDLE_CLOSE_S, least recently leased first, up to the first
        recent one (a client in a call is skipped)."""
        deadline = self._clock() - IDLE_CLOSE_S
        expired = []
        for key, client in self._clients.items():
            if client.inflight:
                continue
            if client.last_used > deadline:
                break
            expired.append(key)
        for key in expired:
            self._retire(key)

    def _retire(self, key: Key) -> None:
        client = self._clients.pop(key)
        client.retired = True
        if client.inflight == 0:
            self._close_soon(client)

    def _close_soon(self, client: EndpointClient) -> None:
        if client.closed or client not in self._open:
            return
        self._open.discard(client)
        task = asyncio.create_task(self._close(client), name=f"close-endpoint-{client.name}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, client: EndpointClient) -> None:
        try:
            await client.provider.aclose()
        except Exception as exc:  # closing must not fail the caller; say so
            log.warning("community endpoint client failed to close", action="community_endpoint",
                        endpoint=client.name, result="close_failed", error=repr(exc)[:200])
        finally:
            client.closed = True

    async def aclose(self) -> None:
        """At shutdown: no new clients; every client closed (those still in a call, after it —
        when a call outlives the drain, its client is closed anyway)."""
        self._stopped = True
        for key in list(self._clients):
            self._retire(key)
        busy = [c for c in self._open if c.inflight]
        for client in busy:
            log.warning("community endpoint client closed during a call", action="community_endpoint",
                        endpoint=client.name, result="closed_busy", inflight=client.inflight)
            self._close_soon(client)
        while pending := [task for task in self._closing if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
