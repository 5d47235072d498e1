"""GET /metrics after real traffic through the fakes (§9), the deploy/ assets that read it.

Metrics are process-global and other tests move them too: every assertion is on a delta
between two scrapes of the running app, parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.settings import VERSION
from llm.types import ChatRequest, ChatResult, ProviderError
from observability import metrics
from llm.breaker import CircuitBreaker
from llm.service import LLMService
from tests.support import interaction_body, make_settings, prometheus_tool, running_app
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ai-interaction-module.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
INTERACTION_ROUTE = "/api/v1/ai/interaction"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(app: Any) -> Samples:
    response = app.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Delta:
    """Scrape now; later `moved(name, **labels)` is how much that sample grew since."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.before = scrape(app)
        self.after = self.before

    def refresh(self) -> "Delta":
        self.after = scrape(self.app)
        return self

    def moved(self, name: str, **labels: str) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)

    def wait(self, name: str, expected: float, **labels: str) -> None:
        wait_until(lambda: self.refresh().moved(name, **labels) >= expected,
                   message=f"{name}{labels} to grow by {expected}")
        assert self.moved(name, **labels) == expected, (name, labels, self.moved(name, **labels))


@pytest.fixture
def app(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router)) as handle:
        yield handle


def test_one_greeting_moves_every_counter_it_should_by_exactly_one(app, fake_ollama, fake_router):
    fake_ollama.prompt_tokens, fake_ollama.completion_tokens = 21, 9
    delta = Delta(app)
    ack = app.post_interaction(interaction_body("hello chat", user_id="metrics-greeter"))
    assert ack.status_code == 202
    fake_router.wait_for_replies(1)
    delta.wait("ai_interactions_total", 1, outcome="replied", trigger="greeting")

    assert delta.moved("ai_interactions_accepted_total") == 1
    assert delta.moved("ai_interaction_duration_seconds_count", outcome="replied") == 1
    model = {"provider": "ollama", "model": "llama3.2"}
    assert delta.moved("ai_provider_requests_total", result="success", **model) == 1
    assert delta.moved("ai_provider_latency_seconds_count", **model) == 1
    assert delta.moved("ai_tokens_total", kind="prompt", **model) == 21
    assert delta.moved("ai_tokens_total", kind="completion", **model) == 9
    assert delta.moved("ai_router_posts_total", result="delivered") == 1
    assert delta.moved("ai_router_posts_total", result="retried") == 0
    assert delta.moved("ai_router_post_latency_seconds_count") == 1
    assert delta.moved("ai_context_lookups_total", result="miss") == 1
    assert delta.moved("ai_context_lookups_total", result="hit") == 0
    assert delta.moved("ai_fallbacks_total", reason="breaker_open") == 0
    assert delta.moved("http_requests_total", method="POST", route=INTERACTION_ROUTE, status="202") == 1
    assert delta.moved("http_request_duration_seconds_count", method="POST", route=INTERACTION_ROUTE) == 1
    # Nothing else ended: one accepted interaction, one outcome.
    outcomes = sum(v for (name, _), v in delta.after.items() if name == "ai_interactions_total") - sum(
        v for (name, _), v in delta.before.items() if name == "ai_interactions_total")
    assert outcomes == 1
    assert value(delta.after, "ai_inflight_provider_calls") == 0
    assert value(delta.after, "ai_interaction_queue_depth") == 0
    assert value(delta.after, "ai_interaction_queue_capacity") == app.runtime.settings.max_queue
    assert value(delta.after, "ai_build_info", version=VERSION) == 1
    assert value(delta.after, "ai_circuit_breaker_state", provider="ollama") == 0


def test_second_message_of_a_user_is_a_context_hit(app, fake_router):
    delta = Delta(app)
    app.post_interaction(interaction_body("hello", user_id="metrics-regular"))
    fake_router.wait_for_replies(1)
    app.post_interaction(interaction_body("how are you?", user_id="metrics-regular"))
    fake_router.wait_for_replies(2)
    delta.wait("ai_interactions_total", 1, outcome="replied", trigger="question")
    assert delta.moved("ai_context_lookups_total", result="miss") == 1
    assert delta.moved("ai_context_lookups_total", result="hit") == 1


def test_ignored_duplicate_and_rate_limited_outcomes(fake_ollama, fake_router):
    with running_app(make_settings(ollama=fake_ollama, router=fake_router, user_cooldown_s=60)) as app:
        delta = Delta(app)
        body = interaction_body("hi", user_id="metrics-cooldown")
        assert app.post_interaction(body).status_code == 202
        assert app.post_interaction(body).json()["duplicate"] is True  # the router retried its post
        fake_router.wait_for_replies(1)
        app.post_interaction(interaction_body("hi again", user_id="metrics-cooldown"))
        app.post_interaction(interaction_body("just chatting", user_id="metrics-cooldown"))
        delta.wait("ai_interactions_total", 1, outcome="rate_limited", trigger="greeting")
        delta.wait("ai_interactions_total", 1, outcome="ignored", trigger="none")
        assert delta.moved("ai_interactions_total", outcome="duplicate", trigger="none") == 1
        assert delta.moved("ai_interactions_total", outcome="replied", trigger="greeting") == 1
        assert delta.moved("ai_rate_limited_total", scope="user") == 1
        assert delta.moved("ai_interactions_accepted_total") == 4
        assert delta.moved("http_requests_total", method="POST", route=INTERACTION_ROUTE, status="202") == 4


def test_failing_llm_opens_the_breaker_and_counts_fallbacks(fake_ollama, fake_router):
    fake_ollama.fail_status = 500
    settings = make_settings(ollama=fake_ollama, router=fake_router, breaker_failure_threshold=2, worker_count=1)
    with running_app(settings) as app:
        delta = Delta(app)
        for i in range(4):
            app.post_interaction(interaction_body("hello", user_id=f"metrics-fail-{i}"))
        fake_router.wait_for_replies(4)
        delta.wait("ai_interactions_total", 4, outcome="fallback", trigger="greeting")
        model = {"provider": "ollama", "model": "llama3.2"}
        assert delta.moved("ai_provider_requests_total", result="bad_status", **model) == 2
        assert delta.moved("ai_provider_requests_total", result="success", **model) == 0
        assert delta.moved("ai_fallbacks_total", reason="provider_bad_status") == 2
        assert delta.moved("ai_fallbacks_total", reason="breaker_open") == 2
        assert delta.moved("ai_circuit_breaker_transitions_total", provider="ollama", to="open") == 1
        assert value(delta.after, "ai_circuit_breaker_state", provider="ollama") == 2
        assert delta.moved("ai_router_posts_total", result="delivered") == 4


def test_breaker_gauge_shows_half_open_when_the_reset_time_has_passed_without_calls(fake_ollama, fake_router):
    fake_ollama.fail_status = 500
    settings = make_settings(ollama=fake_ollama, router=fake_router, breaker_failure_threshold=1,
                             breaker_reset_s=0.3)
    with running_app(settings) as app:
        delta = Delta(app)
        app.post_interaction(interaction_body("hello", user_id="metrics-half-open"))
        fake_router.wait_for_replies(1)
        delta.wait("ai_circuit_breaker_transitions_total", 1, provider="ollama", to="open")
        # No call reaches the breaker any more: only the scrape can notice the reset time passed.
        wait_until(lambda: value(delta.refresh().after, "ai_circuit_breaker_state", provider="ollama") == 1,
                   message="half-open on /metrics")
        assert delta.moved("ai_circuit_breaker_transitions_total", provider="ollama", to="half_open") == 1
        assert app.http.get("/ready").json()["providers"]["ollama"]["breaker"] == "half_open"


def test_queue_depth_gauge_counts_what_waits_for_a_worker(fake_ollama, fake_router):
    fake_ollama.hang = True  # the one worker stays on the first interaction
    settings = make_settings(ollama=fake_ollama, router=fake_router, worker_count=1)
    with running_app(settings) as app:
        delta = Delta(app)
        for i in range(3):
            assert app.post_interaction(interaction_body("hello", user_id=f"metrics-depth-{i}")).status_code == 202
        wait_until(lambda: fake_ollama.calls == 1, message="the first interaction at the LLM")
        assert value(delta.refresh().after, "ai_interaction_queue_depth") == 2
        assert app.http.get("/api/v1/ai/status").json()["data"]["queue_depth"] == 2
        fake_ollama.hang = False
        fake_ollama.release()
        fake_router.wait_for_replies(3)
        wait_until(lambda: value(delta.refresh().after, "ai_interaction_queue_depth") == 0,
                   message="the queue empty on /metrics")


def test_router_failures_and_retries_are_counted(fake_ollama, fake_router):
    fake_router.fail_status = 503
    settings = make_settings(ollama=fake_ollama, router=fake_router, router_retry_max_s=0.3)
    with running_app(settings) as app:
        delta = Delta(app)
        app.post_interaction(interaction_body("hello", user_id="metrics-router-down"))
        delta.wait("ai_interactions_total", 1, outcome="failed", trigger="greeting")
        attempts = len(fake_router.attempts)
        assert attempts >= 2
        assert delta.moved("ai_router_posts_total", result="failed") == 1
        assert delta.moved("ai_router_posts_total", result="retried") == attempts - 1
        assert delta.moved("ai_router_posts_total", result="delivered") == 0
        assert delta.moved("ai_router_post_latency_seconds_count") == 1


def test_http_labels_use_the_route_template_and_stay_bounded(app):
    delta = Delta(app)
    assert app.http.get("/no/such/path/user-123456").status_code == 404
    assert app.http.request("BREW", "/health").status_code == 405
    assert app.http.post(INTERACTION_ROUTE, content=b"{not json", headers={"Content-Type": "application/json"}
                         ).status_code == 400
    delta.refresh()
    assert delta.moved("http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta.moved("http_requests_total", method="OTHER", route="unmatched", status="405") == 1
    assert delta.moved("http_requests_total", method="POST", route=INTERACTION_ROUTE, status="400") == 1
    text = app.http.get("/metrics").text
    assert "user-123456" not in text and "BREW" not in text
    routes = {dict(labels).get("route") for (name, labels) in delta.after if name == "http_requests_total"}
    assert all(r == "unmatched" or r.startswith("/") for r in routes)


def test_the_model_label_is_bounded_to_known_names(monkeypatch):
    monkeypatch.setattr(metrics, "_reported_models", set())
    metrics.allow_models(["configured-model"])
    assert metrics.model_label("configured-model") == "configured-model"
    assert metrics.model_label("anything-a-client-sends") == "other"
    assert metrics.model_label(None) == "other"
    seen = {metrics.model_label(f"reported-{i}", reported=True) for i in range(metrics.MAX_MODEL_LABELS + 50)}
    assert len(seen - {"other"}) == metrics.MAX_MODEL_LABELS and "other" in seen
    assert metrics.model_label("reported-0") == "reported-0"  # once admitted, stays


def test_refusals_of_the_completions_rate_limit_are_counted():
    from completions.limits import KeyRateLimiter

    before = metrics.REGISTRY.get_sample_value("ai_rate_limited_total", {"scope": "api_key"})
    limiter = KeyRateLimiter(1, clock=lambda: 100.0)
    assert limiter.check("key-id").allowed and not limiter.check("key-id").allowed
    assert metrics.REGISTRY.get_sample_value("ai_rate_limited_total", {"scope": "api_key"}) == before + 1


class EchoProvider:
    """Answers with whatever model it is asked for; fails for names starting with "bad"."""

    name = "echo-test"
    default_model = "echo-default"

    async def chat(self, request: ChatRequest) -> ChatResult:
        if request.model and request.model.startswith("bad"):
            raise ProviderError("no such model", provider=self.name, status=404,
                                counts_for_breaker=False, kind="not_found")
        return ChatResult(text="ok", model=request.model or self.default_model, provider=self.name,
                          prompt_tokens=1, completion_tokens=1)


class NoHealth:
    def status(self, name: str) -> bool | None:
        return True


async def test_client_chosen_model_names_never_become_labels(monkeypatch):
    monkeypatch.setattr(metrics, "_reported_models", set())
    breaker = CircuitBreaker("echo-test", failure_threshold=100)
    llm = LLMService({"echo-test": EchoProvider()}, {"echo-test": breaker}, NoHealth(), "echo-test", None, 4)
    for i in range(100):
        with pytest.raises(ProviderError):
            await llm.complete(llm.attempts(ChatRequest(messages=[{"role": "user", "content": "x"}], model=f"bad-{i}")))
    for i in range(100):
        await llm.complete(llm.attempts(ChatRequest(messages=[{"role": "user", "content": "x"}], model=f"good-{i}")))
    families = parse(metrics.render()[0].decode())
    models = {dict(labels)["model"] for (name, labels) in families
              if name == "ai_provider_requests_total" and dict(labels)["provider"] == "echo-test"}
    assert not any(m.startswith("bad") for m in models)
    assert len(models) <= metrics.MAX_MODEL_LABELS + 1
    assert value(families, "ai_provider_requests_total", provider="echo-test", model="other",
                 result="not_found") == 100


async def test_streamed_calls_record_time_to_first_token(fake_ollama):
    from llm.factory import build_provider
    from llm.health import ProviderHealth

    fake_ollama.reply = "one two three"
    settings = make_settings(ollama=fake_ollama)
    provider = build_provider("ollama", settings)
    llm = LLMService({"ollama": provider}, {"ollama": CircuitBreaker("ollama")},
                     ProviderHealth({"ollama": provider}, 60), "ollama", None, 2)
    labels = {"provider": "ollama"}
    before = parse(metrics.render()[0].decode())
    try:
        text = "".join([c.text async for c in llm.stream(
            ChatRequest(messages=[{"role": "user", "content": "hi"}]))])
    finally:
        await provider.aclose()
    after = parse(metrics.render()[0].decode())
    assert text.split() == ["one", "two", "three"]

    def moved(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert moved("ai_provider_ttft_seconds_count") == 1
    assert moved("ai_provider_requests_total", model="llama3.2", result="success") == 1
    assert moved("ai_tokens_total", model="llama3.2", kind="completion") == fake_ollama.completion_tokens


def promtool() -> str:
    return prometheus_tool("promtool")


def test_metrics_output_passes_promtool_check_metrics(app, fake_router):
    fake_router.fail_times = 1  # one retry, so every router series has a sample
    app.post_interaction(interaction_body("hello", user_id="metrics-promtool"))
    app.http.get("/nope")
    fake_router.wait_for_replies(1)
    text = app.http.get("/metrics").text
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def exported_names(text: str) -> set[str]:
    """Every series name the registry can expose, whether or not it has samples yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("_sum", "_count", ""), "gauge": ("",), "info": ("_info",),
                "unknown": ("",), "stateset": ("",)}
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def promql_metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:ai|http)_[a-z0-9_]+)\b", expr))


def test_required_metric_families_are_exported():
    names = exported_names(metrics.render()[0].decode())
    required = {
        "ai_interactions_total", "ai_interactions_accepted_total", "ai_interaction_queue_depth",
        "ai_interaction_queue_capacity", "ai_inflight_provider_calls", "ai_interaction_duration_seconds_bucket",
        "ai_provider_requests_total", "ai_provider_latency_seconds_bucket", "ai_provider_ttft_seconds_bucket",
        "ai_tokens_total", "ai_circuit_breaker_state", "ai_circuit_breaker_transitions_total",
        "ai_fallbacks_total", "ai_router_posts_total", "ai_router_post_latency_seconds_bucket",
        "ai_context_lookups_total", "ai_rate_limited_total", "http_requests_total",
        "http_request_duration_seconds_bucket", "ai_build_info",
    }
    assert required <= names, required - names


def test_dashboard_is_valid_and_only_queries_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert dashboard["uid"] and dashboard["title"]
    names = exported_names(metrics.render()[0].decode())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            found = promql_metric_names(target["expr"])
            assert found, (panel["title"], target["expr"])
            assert found <= names, (panel["title"], found - names)
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            used |= found
    for family in ("ai_interactions_total", "ai_provider_latency_seconds_bucket", "ai_provider_ttft_seconds_bucket",
                   "ai_tokens_total", "ai_circuit_breaker_state", "ai_interaction_queue_depth",
                   "ai_router_posts_total", "http_requests_total"):
        assert family in used, f"dashboard does not show {family}"


def test_alert_rules_are_valid_and_only_use_exported_metrics():
    text = ALERTS.read_text()
    names = exported_names(metrics.render()[0].decode())
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", text, re.M))
    assert {"AIProviderCircuitBreakerOpen", "AIRouterReplyDeliveryFailing", "AIInteractionQueueNearFull",
            "AILLMLatencyHigh", "AIHTTP5xxRateHigh"} <= alerts
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = promql_metric_names(code)
    assert found and found <= names, found - names
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(alerts)} rules found" in check.stdout
    unit = subprocess.run([tool, "test", "rules", "alerts_test.yml"], cwd=ALERTS.parent,
                          capture_output=True, text=True, timeout=30)
    assert unit.returncode == 0, unit.stdout + unit.stderr
