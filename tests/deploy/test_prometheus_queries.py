"""A real Prometheus server scrapes the running app (fake LLM, fake router) with the alert rules
loaded; every expression of the Grafana dashboard and of the alert rules is evaluated through its
HTTP API: each must parse, and the core panels must return data. Needs the `prometheus` binary
(Debian's `prometheus` package; .ci/run installs it): skipped without it unless REQUIRE_PROMTOOL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_router import FakeRouter
from tests.fakes.llm_fixtures import run_fake
from tests.server_thread import free_port
from tests.support import interaction_body, make_settings, prometheus_tool, running_app
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ai-interaction-module.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
API_KEY = "prom-test-key"
# Grafana's variables, as a dashboard with "All" instances over the last few minutes would send them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m",
                     "${instance:regex}": ".*", "${instance}": ".*", "$instance": ".*"}
# Panel title → the core panels that must return data after the traffic below.
CORE_PANELS = {
    "Replies per second by outcome",  # ACK → outcome rate, by outcome
    "LLM latency p50 / p95 / p99",
    "Circuit breaker state",
    "Queue depth vs capacity",
    "HTTP requests by route and status",  # the ACKs (202) of the interaction route among them
}


def prometheus_binary() -> str:
    return prometheus_tool("prometheus")


def dashboard_targets() -> list[tuple[str, str]]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in panels(board["panels"])
            for target in panel.get("targets", []) if target.get("expr")]


def concrete(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    assert "$" not in expr, f"a Grafana variable is left in {expr}"
    return expr


def alert_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [(rule.get("alert") or rule["record"], rule["expr"]) for group in groups for rule in group["rules"]]


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> dict[str, Any]:
        response = self.http.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]

    def value(self, expr: str) -> float:
        result = self.query(expr)["result"]
        return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def fake_ollama_module() -> Iterator[FakeOllama]:
    yield from run_fake(FakeOllama())


@pytest.fixture(scope="module")
def fake_router_module() -> Iterator[FakeRouter]:
    fake = FakeRouter().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_ollama_module, fake_router_module):
    binary = prometheus_binary()
    settings = make_settings(ollama=fake_ollama_module, router=fake_router_module, valid_api_keys=API_KEY)
    with running_app(settings) as app:
        work = tmp_path_factory.mktemp("prometheus")
        target = app.url.removeprefix("http://")
        (work / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "ai-interaction-module",
                                "static_configs": [{"targets": [target]}]}],
        }))
        port = free_port()
        log_file = (work / "prometheus.log").open("w")  # a file, not a pipe: a full pipe would stall it
        proc = subprocess.Popen([binary, f"--config.file={work / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=log_file)
        prometheus = Prometheus(f"http://127.0.0.1:{port}")
        try:
            def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"prometheus exited:\n{(work / 'prometheus.log').read_text()}")
                try:
                    return prometheus.http.get("/-/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, timeout=30, message="prometheus ready")
            wait_until(lambda: prometheus.value('up{job="ai-interaction-module"}') == 1, timeout=30,
                       message="the first scrape of the app")
            yield app, prometheus, fake_router_module
        finally:
            prometheus.http.close()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log_file.close()


def send_traffic(app: Any, router: Any, batch: int) -> None:
    """Two answered greetings, one ignored line and one OpenAI completion; waits for the replies."""
    delivered = len(router.replies)
    for n in range(2):
        assert app.post_interaction(interaction_body("hello everyone!", user_id=f"prom-{batch}-{n}")).status_code == 202
    assert app.post_interaction(interaction_body("just watching the stream", user_id=f"prom-{batch}-quiet")
                                ).status_code == 202
    completion = app.http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                               json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    assert completion.status_code == 200, completion.text
    router.wait_for_replies(delivered + 2)


@pytest.fixture(scope="module")
def scraped(stack):
    """Two batches of traffic, each seen by a scrape: every rate has an increase in its window."""
    app, prometheus, router = stack
    replied = 'sum(ai_interactions_total{outcome="replied"})'
    for batch in range(2):
        before = prometheus.value(replied)
        send_traffic(app, router, batch)
        wait_until(lambda: prometheus.value(replied) >= before + 2, timeout=30,
                   message=f"a scrape after traffic batch {batch}")
    return prometheus


@pytest.mark.parametrize("title, expr", dashboard_targets(), ids=[t for t, _ in dashboard_targets()])
def test_every_dashboard_expression_is_valid_promql(scraped, title, expr):
    data = scraped.query(concrete(expr))
    assert data["resultType"] == "vector"


@pytest.mark.parametrize("name, expr", alert_expressions(), ids=[n for n, _ in alert_expressions()])
def test_every_alert_expression_is_valid_promql(scraped, name, expr):
    assert scraped.query(expr)["resultType"] == "vector"


def test_core_panels_return_data(scraped):
    targets = dashboard_targets()
    assert CORE_PANELS <= {title for title, _ in targets}
    for title, expr in targets:
        if title in CORE_PANELS:
            result = scraped.query(concrete(expr))["result"]
            assert result, f"{title!r}: {expr} returned no data"
            numbers = [float(sample["value"][1]) for sample in result]
            assert any(n == n for n in numbers), f"{title!r}: only NaN"  # NaN != NaN


def test_outcomes_answered_and_ignored_are_both_seen(scraped):
    expr = concrete('sum by (outcome) (rate(ai_interactions_total{instance=~"$instance"}[$__rate_interval]))')
    outcomes = {s["metric"]["outcome"]: float(s["value"][1]) for s in scraped.query(expr)["result"]}
    assert outcomes.get("replied", 0) > 0 and outcomes.get("ignored", 0) > 0, outcomes


def test_alert_rules_are_loaded_and_evaluate(scraped):
    def rules() -> list[dict[str, Any]]:
        body = scraped.http.get("/api/v1/rules").json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    names = {name for name, _ in alert_expressions()}
    wait_until(lambda: {r["name"] for r in rules() if r.get("lastEvaluation", "").startswith("2")} >= names
               and all(r["health"] == "ok" for r in rules()), timeout=30, message="every rule evaluated")
    assert {r["name"] for r in rules()} == names
