"""Every Prometheus metric family the service exports, in one registry, served at GET /metrics.

Labels are low-cardinality by rule: never a user id, channel, message text or raw path.
- `route` is the route template (`/api/v1/ai/context/<platform>/<user_id>`), "unmatched" for 404s;
- `method` is one of the standard HTTP methods, anything else is "OTHER";
- `model` is a configured model name or one a provider reported answering with (at most
  `MAX_MODEL_LABELS` of those); any other name, e.g. whatever an OpenAI client asks for, is "other".

The service runs as one Hypercorn process per replica, so the default (single-process) client
library is correct: scale by replicas, each scraped on its own `/metrics`.

Buckets are chosen per measurement: milliseconds for the HTTP ACK path, seconds for LLM calls
(up to REQUEST_TIMEOUT and beyond), tens of ms to seconds for the first token, up to
INTERACTION_MAX_AGE_S for ACK → reply, and router posts including retries (ROUTER_RETRY_MAX_S).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector,
    disable_created_metrics, generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.settings import VERSION

# `*_created` series double the scrape size and no dashboard or alert here uses them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
PlatformCollector(registry=REGISTRY)  # python_info

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
ROUTER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

OUTCOMES = ("replied", "fallback", "ignored", "rate_limited", "expired", "failed", "duplicate")
TRIGGERS = ("mention", "greeting", "farewell", "question", "event", "command")
BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
OTHER_MODEL = "other"
MAX_MODEL_LABELS = 32

interactions_total = Counter(
    "ai_interactions_total", "Accepted interactions by final outcome and trigger",
    ["outcome", "trigger"], registry=REGISTRY,
)
interactions_accepted_total = Counter(
    "ai_interactions_accepted_total", "Interactions answered 202 (including duplicates)",
    registry=REGISTRY,
)
queue_capacity = Gauge(
    "ai_interaction_queue_capacity", "MAX_QUEUE: interactions the queue holds before answering 429",
    registry=REGISTRY,
)
inflight_provider_calls = Gauge(
    "ai_inflight_provider_calls", "Provider calls running now", registry=REGISTRY
)
interaction_duration = Histogram(
    "ai_interaction_duration_seconds", "From ACK to the interaction's final outcome (reply posted)",
    ["outcome"], buckets=E2E_BUCKETS, registry=REGISTRY,
)
provider_requests_total = Counter(
    "ai_provider_requests_total", "Provider calls by result (success or the error kind)",
    ["provider", "model", "result"], registry=REGISTRY,
)
provider_latency = Histogram(
    "ai_provider_latency_seconds", "Latency of successful provider calls (whole answer)",
    ["provider", "model"], buckets=LLM_BUCKETS, registry=REGISTRY,
)
provider_ttft = Histogram(
    "ai_provider_ttft_seconds", "Time to first token of streamed provider calls",
    ["provider"], buckets=TTFT_BUCKETS, registry=REGISTRY,
)
tokens_total = Counter(
    "ai_tokens_total", "Tokens reported by providers", ["provider", "model", "kind"], registry=REGISTRY
)
fallbacks_total = Counter(
    "ai_fallbacks_total", "Canned fallback replies by reason", ["reason"], registry=REGISTRY
)
router_posts_total = Counter(
    "ai_router_posts_total", "Reply posts to the router: delivered, retried (per retry), failed",
    ["result"], registry=REGISTRY,
)
router_post_latency = Histogram(
    "ai_router_post_latency_seconds", "Router post latency, retries included",
    buckets=ROUTER_BUCKETS, registry=REGISTRY,
)
context_lookups_total = Counter(
    "ai_context_lookups_total", "Conversation context lookups", ["result"], registry=REGISTRY
)
rate_limited_total = Counter(
    "ai_rate_limited_total", "Requests or replies refused by a rate limit", ["scope"], registry=REGISTRY
)
http_requests_total = Counter(
    "http_requests_total", "HTTP requests by route template", ["method", "route", "status"],
    registry=REGISTRY,
)
http_request_duration = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by route template (to the response headers for streamed responses)",
    ["method", "route"], buckets=HTTP_BUCKETS, registry=REGISTRY,
)
build_info = Gauge("ai_build_info", "Build information", ["version"], registry=REGISTRY)
build_info.labels(version=VERSION).set(1)

# Series that alerts and ratios rely on exist at 0 from the start: rate() and increase() cannot
# see the first increment of a series that appears with value 1.
for _outcome in ("replied", "fallback", "moderated", "rate_limited", "failed"):
    for _trigger in TRIGGERS:
        interactions_total.labels(outcome=_outcome, trigger=_trigger)
for _outcome in ("ignored", "expired", "failed", "duplicate"):
    interactions_total.labels(outcome=_outcome, trigger="none")
for _result in ("delivered", "retried", "failed"):
    router_posts_total.labels(result=_result)
for _result in ("hit", "miss"):
    context_lookups_total.labels(result=_result)
for _scope in ("user", "channel", "api_key"):
    rate_limited_total.labels(scope=_scope)
for _reason in ("breaker_open", "provider_error", "provider_timeout", "provider_connect", "empty_reply", "timeout"):
    fallbacks_total.labels(reason=_reason)


# --- model label: bounded ----------------------------------------------------------------------
_configured_models: set[str] = set()
_reported_models: set[str] = set()


def configure(settings: Any) -> None:
    """Per-process values known from the settings (called once by the app factory)."""
    queue_capacity.set(settings.max_queue)
    names = (settings.ollama_model, settings.waddleai_model, getattr(settings, "waddleai_preferred_model", None))
    _configured_models.update(n for n in names if n)


def allow_models(names: Iterable[str]) -> None:
    """Admit more model names as label values (e.g. a community's configured model)."""
    _configured_models.update(n for n in names if n)


def model_label(model: str | None, reported: bool = False) -> str:
    """`model` when configured (or, with `reported`, when a provider said it answered with it and
    fewer than MAX_MODEL_LABELS such names were seen); else "other". A name a client asked for is
    never admitted on its own."""
    if not model:
        return OTHER_MODEL
    if model in _configured_models or model in _reported_models:
        return model
    if reported and len(_reported_models) < MAX_MODEL_LABELS:
        _reported_models.add(model)
        return model
    return OTHER_MODEL


# --- HTTP: label children cached per (method, route, status) -------------------------------------
_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_http(method: str, route: str | None, status: int, seconds: float | None) -> None:
    """Count one HTTP request; `route` is the matched route template (None when nothing matched)."""
    if method not in HTTP_METHODS:
        method = "OTHER"
    key = (method, route or UNMATCHED_ROUTE, status)
    children = _http_children.get(key)
    if children is None:
        children = (http_requests_total.labels(key[0], key[1], str(status)),
                    http_request_duration.labels(key[0], key[1]))
        _http_children[key] = children
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)


# --- circuit breakers: state read when scraped ---------------------------------------------------
_breakers: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()


class _BreakerStateCollector:
    """`ai_circuit_breaker_state{provider}` from each live breaker's state at scrape time.

    OPEN turns HALF_OPEN by time alone (BREAKER_RESET_S later, with no call); a gauge set only on
    transitions would keep showing 2 then. Reading `breaker.state` applies that transition."""

    name = "ai_circuit_breaker_state"
    documentation = "Breaker state: 0 closed, 1 half-open, 2 open"

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=["provider"])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=["provider"])
        for name, breaker in sorted(_breakers.items()):
            family.add_metric([name], BREAKER_STATE_VALUE[breaker.state])
        yield family


# Registered (so collected) before the transitions counter: a transition applied while reading a
# state is then already in the counter of the same scrape.
REGISTRY.register(_BreakerStateCollector())
breaker_transitions_total = Counter(
    "ai_circuit_breaker_transitions_total", "Breaker transitions by target state",
    ["provider", "to"], registry=REGISTRY,
)


def track_breaker(breaker: Any) -> None:
    """Export this breaker's state (the newest breaker of a provider name wins)."""
    _breakers[breaker.name] = breaker
    for to in BREAKER_STATE_VALUE:
        breaker_transitions_total.labels(provider=breaker.name, to=to)


def record_breaker_transition(provider: str, to: str) -> None:
    breaker_transitions_total.labels(provider=provider, to=to).inc()


# --- queue depth: read when scraped --------------------------------------------------------------
_queue: Callable[[], Any] = lambda: None  # a weak reference to the live queue, once tracked


class _QueueDepthCollector:
    """`ai_interaction_queue_depth` from the live queue's `depth()` at scrape time: nothing to update
    on each enqueue and claim (two locked gauge writes per interaction before)."""

    name = "ai_interaction_queue_depth"
    documentation = "Interactions waiting for a worker"

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        queue = _queue()
        yield GaugeMetricFamily(self.name, self.documentation, value=queue.depth() if queue is not None else 0)


REGISTRY.register(_QueueDepthCollector())


def track_queue(queue: Any) -> None:
    """Export this queue's depth (the newest queue wins; held weakly)."""
    global _queue
    _queue = weakref.ref(queue)


# --- the reply outbox (§6): depth and age read when scraped -------------------------------------
outbox_replies_total = Counter(
    "ai_outbox_replies_total",
    "Replies that left the outbox: delivered, failed (refused, retry budget spent, overflow in memory "
    "mode, shutdown), expired (INTERACTION_MAX_AGE_S before a post)",
    ["result"], registry=REGISTRY,
)
outbox_overflow_total = Counter(
    "ai_outbox_overflow_total",
    "Replies that found the outbox full (OUTBOX_MAX): failed in memory mode, left in the store with PostgreSQL",
    registry=REGISTRY,
)
outbox_takeovers_total = Counter(
    "ai_outbox_takeovers_total",
    "Undelivered replies this instance took from the store (a dead instance's, or parked by a full outbox)",
    registry=REGISTRY,
)
for _result in ("delivered", "failed", "expired"):
    outbox_replies_total.labels(result=_result)
_outbox: Callable[[], Any] = lambda: None  # a weak reference to the live outbox, once tracked


class _OutboxCollector:
    """`ai_outbox_depth` and `ai_outbox_oldest_seconds` from the live outbox at scrape time."""

    depth = ("ai_outbox_depth", "Undelivered replies this instance's outbox holds")
    oldest = ("ai_outbox_oldest_seconds",
              "Seconds the oldest undelivered reply has been in this instance's outbox (0: empty)")

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(*self.depth)
        yield GaugeMetricFamily(*self.oldest)

    def collect(self) -> Iterator[Metric]:
        outbox = _outbox()
        yield GaugeMetricFamily(*self.depth, value=outbox.depth() if outbox is not None else 0)
        yield GaugeMetricFamily(*self.oldest, value=outbox.oldest_s() if outbox is not None else 0)


REGISTRY.register(_OutboxCollector())


def track_outbox(outbox: Any) -> None:
    """Export this outbox's depth and age (the newest outbox wins; held weakly)."""
    global _outbox
    _outbox = weakref.ref(outbox)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# --- PostgreSQL store (issue 5; appended by the storage work) ----------------------------------
store_up = Gauge(
    "ai_store_up", "1 when the interaction store answers (always 1 in memory mode)", registry=REGISTRY
)
store_up.set(1)
store_errors_total = Counter(
    "ai_store_errors_total", "PostgreSQL operations that failed (connection lost, timeout, error)",
    ["operation"], registry=REGISTRY,
)
queue_takeovers_total = Counter(
    "ai_queue_takeovers_total", "Interactions claimed again after their worker's lease ran out",
    registry=REGISTRY,
)


# --- Redis: the state several replicas share (§12; storage/redis_link.py) ------------------------
REDIS_USES = ("rate_limit", "api_key", "dedupe", "context")
redis_fallbacks_total = Counter(
    "ai_redis_fallbacks_total",
    "Operations served without Redis (PostgreSQL or this process's state) because it was unavailable",
    ["use"], registry=REGISTRY,
)
for _use in REDIS_USES:
    redis_fallbacks_total.labels(use=_use)
_redis: Callable[[], Any] = lambda: None  # a weak reference to the live Redis link, once tracked


class _RedisAvailableCollector:
    """`ai_redis_available` (1 usable, 0 unavailable: in-process state) from the live link at scrape
    time; without a sample when REDIS_URL is unset, so "not configured" never reads as "down"."""

    name = "ai_redis_available"
    documentation = "1 when Redis (REDIS_URL) is in use, 0 while it is unavailable and state is per process"

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation)
        link = _redis()
        if link is not None:
            family.add_metric([], 1 if link.available else 0)
        yield family


REGISTRY.register(_RedisAvailableCollector())


def track_redis(link: Any) -> None:
    """Export this link's availability (the newest link wins; held weakly)."""
    global _redis
    _redis = weakref.ref(link)
