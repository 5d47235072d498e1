"""Every Prometheus metric family the service exports, in one registry.

Labels are low-cardinality by rule: never a user id, channel or message text.
Buckets: milliseconds-scale for HTTP and router posts, seconds-scale for LLM calls.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.settings import VERSION

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

OUTCOMES = ("replied", "fallback", "ignored", "rate_limited", "expired", "failed", "duplicate")
BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}

interactions_total = Counter(
    "ai_interactions_total", "Accepted interactions by final outcome and trigger",
    ["outcome", "trigger"], registry=REGISTRY,
)
interactions_accepted_total = Counter(
    "ai_interactions_accepted_total", "Interactions answered 202 (including duplicates)",
    registry=REGISTRY,
)
queue_depth = Gauge("ai_interaction_queue_depth", "Interactions waiting for a worker", registry=REGISTRY)
inflight_provider_calls = Gauge(
    "ai_inflight_provider_calls", "Provider calls running now", registry=REGISTRY
)
interaction_duration = Histogram(
    "ai_interaction_duration_seconds", "From ACK to the interaction's final outcome",
    ["outcome"], buckets=E2E_BUCKETS, registry=REGISTRY,
)
provider_requests_total = Counter(
    "ai_provider_requests_total", "Provider calls by result",
    ["provider", "model", "result"], registry=REGISTRY,
)
provider_latency = Histogram(
    "ai_provider_latency_seconds", "Provider call latency (whole answer)",
    ["provider", "model"], buckets=LLM_BUCKETS, registry=REGISTRY,
)
provider_ttft = Histogram(
    "ai_provider_ttft_seconds", "Time to first token of streamed provider calls",
    ["provider"], buckets=TTFT_BUCKETS, registry=REGISTRY,
)
tokens_total = Counter(
    "ai_tokens_total", "Tokens reported by providers", ["provider", "model", "kind"], registry=REGISTRY
)
breaker_state = Gauge(
    "ai_circuit_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open", ["provider"],
    registry=REGISTRY,
)
breaker_transitions_total = Counter(
    "ai_circuit_breaker_transitions_total", "Breaker transitions by target state",
    ["provider", "to"], registry=REGISTRY,
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
    buckets=HTTP_BUCKETS + (5.0, 10.0, 30.0), registry=REGISTRY,
)
context_lookups_total = Counter(
    "ai_context_lookups_total", "Conversation context lookups", ["result"], registry=REGISTRY
)
rate_limited_total = Counter(
    "ai_rate_limited_total", "Replies suppressed by a rate limit", ["scope"], registry=REGISTRY
)
http_requests_total = Counter(
    "http_requests_total", "HTTP requests by route template", ["method", "route", "status"],
    registry=REGISTRY,
)
http_request_duration = Histogram(
    "http_request_duration_seconds", "HTTP request duration by route template",
    ["method", "route"], buckets=HTTP_BUCKETS, registry=REGISTRY,
)
build_info = Gauge("ai_build_info", "Build information", ["version"], registry=REGISTRY)
build_info.labels(version=VERSION).set(1)


def set_breaker_state(provider: str, state: str) -> None:
    breaker_state.labels(provider=provider).set(BREAKER_STATE_VALUE[state])


def record_breaker_transition(provider: str, to: str) -> None:
    breaker_transitions_total.labels(provider=provider, to=to).inc()
    set_breaker_state(provider, to)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
