"""The benchmarks. Each measures the service against a baseline in the same run, alternating the two
(A B, B A, A B, …) for several rounds, and reports medians and the median of per-round ratios.

A benchmark returns `Row`s; one that cannot run yet (OpenAI API answering 404, PostgreSQL mode not
starting) returns a row saying so instead of failing the suite.
"""

from __future__ import annotations

import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import payloads, profile
from bench.drive import drive, postgres_cpu_seconds
from bench.procs import Fleet, Proc, StartError, http

INTERACTION_PATH = "/api/v1/ai/interaction"
OPENAI_PATH = "/v1/chat/completions"
API_KEY = "bench-key"
PG_DSN_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DATABASE = "bench_aim"


@dataclass
class Settings:
    rounds: int = 5
    duration: float = 3.0          # seconds per measured run (throughput/latency)
    warmup: float = 1.0
    generator: str = "wrk"         # wrk | python (throughput runs); latency runs use python
    connections: int = 32
    pending: int = 1000
    pending_rate: float = 200.0    # req/s of the ACK latency probe
    e2e_count: int = 1500
    memory_counts: tuple[int, int] = (10_000, 100_000)
    profile_s: float = 15.0
    quiet_wait: float = 5.0        # max seconds to wait for other load on the machine to calm down


@dataclass
class Row:
    key: str
    title: str
    service: str
    baseline: str
    ratio: str
    target: str
    verdict: str  # met | MISSED | report | skipped | error
    notes: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_rps(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def status_note(results: list[dict[str, Any]]) -> str:
    """Non-2xx answers and transport errors summed over runs, e.g. '429×12, timeout×1' or 'none'."""
    counts: dict[str, int] = {}
    for res in results:
        for code, n in res["statuses"].items():
            if not 200 <= int(code) < 300:
                counts[code] = counts.get(code, 0) + n
        for kind, n in (res.get("errors") or {}).items():
            counts[kind] = counts.get(kind, 0) + n
    return ", ".join(f"{k}×{v}" for k, v in sorted(counts.items())) or "none"


def cpu_per_request_us(results: list[dict[str, Any]]) -> float:
    """Median CPU time of the measured process per answered request, in µs."""
    return med([r["target_cpu"] / r["rps"] * 1e6 for r in results if r.get("target_cpu") and r.get("rps")])


def cpu_note(results: list[dict[str, Any]], label: str) -> str:
    target = [r["target_cpu"] for r in results if r.get("target_cpu") is not None]
    gen = [r["gen_cpu"] for r in results if r.get("gen_cpu") is not None]
    foreign = [r["foreign_cpu"] for r in results if r.get("foreign_cpu") is not None]
    parts = []
    if target:
        parts.append(f"{label} CPU {med(target):.2f}")
    if gen:
        parts.append(f"generator ({results[0]['generator']}) {med(gen):.2f}")
    if foreign:
        parts.append(f"other load {med(foreign):.2f}")
    return ", ".join(parts) + " cores" if parts else ""


class Context:
    """Shared processes and helpers of one run."""

    def __init__(self, settings: Settings, workdir: Path, log: Callable[[str], None]) -> None:
        self.s = settings
        self.workdir = workdir
        self.log = log
        self.fleet = Fleet(workdir)
        self._fakes: dict[str, Proc] = {}
        self._baseline: Proc | None = None
        self._openai_floors: list[Proc] = []
        self._services: dict[str, Proc] = {}
        self._ids = 0
        self.run_tag = time.strftime("%H%M%S")
        self.quiet_budget = settings.quiet_wait * 8

    # --- processes ------------------------------------------------------------------------------
    def fakes(self) -> dict[str, Proc]:
        if not self._fakes:
            procs = {kind: self.fleet.fake(kind) for kind in ("ollama", "openai", "router")}
            for proc in procs.values():
                proc.wait_ready("/__bench/stats")
            self._fakes = procs
        return self._fakes

    def baseline(self) -> Proc:
        if self._baseline is None:
            proc = self.fleet.baseline()
            proc.wait_ready("/health")
            self._baseline = proc
        return self._baseline

    def openai_floors(self) -> list[Proc]:
        """The floor proxies of /v1/chat/completions to the fake provider, highest rung first: bare
        Quart + the SDK call (bench/baseline_app.py), bare Quart + a bare aiohttp call, raw ASGI on
        Hypercorn + a bare aiohttp call (bench/proxy_floors.py)."""
        if not self._openai_floors:
            upstream = self.fakes()["openai"].url
            procs = [self.fleet.baseline(upstream), self.fleet.proxy_floor("quart", upstream),
                     self.fleet.proxy_floor("asgi", upstream)]
            for proc in procs:
                proc.wait_ready("/health")
            self._openai_floors = procs
        return self._openai_floors

    def service_env(self, **overrides: Any) -> dict[str, str]:
        fakes = self.fakes()
        env = {
            "OLLAMA_HOST": "127.0.0.1", "OLLAMA_PORT": str(fakes["ollama"].port),
            "WADDLEAI_BASE_URL": fakes["openai"].url, "WADDLEAI_API_KEY": "bench-upstream-key",
            "ROUTER_API_URL": fakes["router"].url + "/api/v1/router",
            "SHUTDOWN_GRACE_S": "3",
        }
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def service(self, name: str, **env: Any) -> Proc:
        """Start (or reuse, by name) a `python app.py` service with these settings."""
        if name in self._services and self._services[name].alive:
            return self._services[name]
        proc = self.fleet.service(name, self.service_env(**env))
        proc.wait_ready("/health")
        self._services[name] = proc
        return proc

    def stop_service(self, name: str) -> None:
        proc = self._services.pop(name, None)
        if proc is not None:
            self.fleet.stop(proc)

    def ours(self) -> list[Proc]:
        return list(self.fleet.procs)

    def set_fake(self, kind: str, **knobs: Any) -> None:
        code, body, _ = http("POST", self.fakes()[kind].url + "/__bench/set", knobs)
        if code != 200:
            raise RuntimeError(f"fake {kind} refused {knobs}: {body}")

    def fake_stats(self, kind: str) -> dict[str, Any]:
        return http("GET", self.fakes()[kind].url + "/__bench/stats")[1]

    def new_run(self, tag: str) -> str:
        self._ids += 1
        return f"{self.run_tag}{tag}{self._ids}"

    # --- measuring --------------------------------------------------------------------------------
    def wait_quiet(self) -> None:
        """Before a measured run: wait (bounded) while other users' processes keep the machine busy."""
        from bench.drive import machine_busy_seconds

        waited, deadline = 0.0, time.monotonic() + min(self.s.quiet_wait, self.quiet_budget)
        while True:
            ours0 = sum(_cpu(p) for p in self.fleet.procs)
            busy0, t0 = machine_busy_seconds(), time.monotonic()
            time.sleep(0.3)
            ours1 = sum(_cpu(p) for p in self.fleet.procs)
            dt = time.monotonic() - t0
            foreign = (machine_busy_seconds() - busy0 - (ours1 - ours0)) / dt
            if foreign < 0.35 or time.monotonic() > deadline:
                break
            waited += dt
        self.quiet_budget -= waited

    def load(self, target: Proc, spec: dict[str, Any], generator: str | None = None,
             extra: Callable[[], float] | None = None) -> dict[str, Any]:
        self.wait_quiet()
        return drive(target, spec, generator or self.s.generator, self.workdir, self.ours(), extra)

    def alternate(self, first: Callable[[], dict[str, Any]], second: Callable[[], dict[str, Any]],
                  label: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rounds of (first, second) in ABBA order; returns the results of each side."""
        a_res, b_res = self.rotate([first, second], label)
        return a_res, b_res

    def rotate(self, sides: list[Callable[[], dict[str, Any]]], label: str) -> list[list[dict[str, Any]]]:
        """Rounds of every side, the order reversed every other round (ABC CBA …); results per side."""
        results: list[list[dict[str, Any]]] = [[] for _ in sides]
        for i in range(self.s.rounds):
            order = list(zip(sides, results))
            for fn, bucket in (order if i % 2 == 0 else order[::-1]):
                bucket.append(fn())
            self.log(f"  {label} round {i + 1}/{self.s.rounds}")
        return results

    def close(self) -> None:
        self.fleet.close()


def _cpu(proc: Proc) -> float:
    try:
        return proc.cpu_seconds()
    except OSError:
        return 0.0


def interaction_request(run: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "interaction", "path": INTERACTION_PATH, "run": run, "users": 10_000,
            "channels": 500, **extra}


def closed(ctx: Context, request: dict[str, Any], connections: int | None = None,
           duration: float | None = None) -> dict[str, Any]:
    return {"mode": "closed", "connections": connections or ctx.s.connections,
            "duration": duration or ctx.s.duration, "warmup": ctx.s.warmup, "request": request}


# ==================================================================================================
# 1. ACK throughput
# ==================================================================================================
ACK_ENV = {"MAX_QUEUE": 100_000}  # the queue never limits; 429s would be counted anyway


def bench_ack(ctx: Context) -> list[Row]:
    svc = ctx.service("svc-memory", **ACK_ENV)
    base = ctx.baseline()
    before = svc.outcomes()
    svc_res, base_res = ctx.alternate(
        lambda: ctx.load(svc, closed(ctx, interaction_request(ctx.new_run("a")))),
        lambda: ctx.load(base, closed(ctx, interaction_request(ctx.new_run("b")))),
        "ack")
    after = svc.outcomes()
    outcomes = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after if after.get(k, 0) - before.get(k, 0)}
    ratios = [s["rps"] / b["rps"] for s, b in zip(svc_res, base_res) if b["rps"]]
    ratio = med(ratios)
    s_rps, b_rps = med([r["rps"] for r in svc_res]), med([r["rps"] for r in base_res])
    s_p50 = med([r["latency_ms"]["p50"] for r in svc_res])
    s_p99 = med([r["latency_ms"]["p99"] for r in svc_res])
    b_p99 = med([r["latency_ms"]["p99"] for r in base_res])
    notes = (f"{ctx.s.connections} conns; non-2xx: service {status_note(svc_res)}, baseline "
             f"{status_note(base_res)}; outcomes {outcomes or 'n/a'}; CPU per request: service "
             f"{cpu_per_request_us(svc_res):.0f} µs, baseline {cpu_per_request_us(base_res):.0f} µs; "
             f"{cpu_note(svc_res, 'service')}; baseline {cpu_note(base_res, 'app')}")
    return [Row("ack", "ACK throughput, /api/v1/ai/interaction",
                f"{fmt_rps(s_rps)} req/s (p50 {fmt_ms(s_p50)}, p99 {fmt_ms(s_p99)})",
                f"{fmt_rps(b_rps)} req/s (p99 {fmt_ms(b_p99)})",
                f"{ratio:.2f}×", "≥ 0.80×", "met" if ratio >= 0.80 else "MISSED", notes,
                {"service": svc_res, "baseline": base_res, "ratios": ratios, "outcomes": outcomes})]


# ==================================================================================================
# 2. ACK p99 while 1,000 interactions wait on a slow LLM
# ==================================================================================================
def bench_ack_pending(ctx: Context) -> list[Row]:
    n = ctx.s.pending
    workers = min(1024, n + 24)  # WORKER_COUNT ≤ 1024: the pending ones hold workers, ≥ 24 stay free
    env = {"MAX_QUEUE": max(5000, 4 * n), "WORKER_COUNT": workers, "MAX_CONCURRENT_REQUESTS": 10,
           "USER_COOLDOWN_S": 0, "CHANNEL_MAX_REPLIES_PER_MIN": 1_000_000, "REQUEST_TIMEOUT": 120}
    ctx.set_fake("ollama", delay=2.0)
    busy = ctx.service("svc-pending", **env)
    idle = ctx.service("svc-pending-idle", **env)
    feeder = Feeder(ctx, busy, n)
    try:
        feeder.fill()
        feeder.start()

        busy_res, idle_res = _pending_rounds(ctx, feeder, busy, idle, ctx.s.rounds, "ack_pending")
        # Control: the same 1,000 waiting, but the LLM never answers, so nothing completes. Shows
        # what waiting itself costs, apart from the bursts of replies a lock-step 2 s LLM produces.
        ctx.set_fake("ollama", hang=True)
        time.sleep(2.5)  # the calls in flight finish; the next ones hang
        hang_busy, hang_idle = _pending_rounds(ctx, feeder, busy, idle, max(1, ctx.s.rounds - 2), "control")
    finally:
        feeder.stop()
        ctx.stop_service("svc-pending")
        ctx.stop_service("svc-pending-idle")
        ctx.set_fake("ollama", delay=0.0, hang=False)
    b_p99 = med([r["latency_ms"]["p99"] for r in busy_res])
    i_p99 = med([r["latency_ms"]["p99"] for r in idle_res])
    b_p50 = med([r["latency_ms"]["p50"] for r in busy_res])
    i_p50 = med([r["latency_ms"]["p50"] for r in idle_res])
    ratios = [b["latency_ms"]["p99"] / i["latency_ms"]["p99"] for b, i in zip(busy_res, idle_res)]
    ratio = med(ratios)
    lag = med([r["lag_ms"]["p99"] for r in busy_res + idle_res if r.get("lag_ms")])
    met = b_p99 <= 25 and ratio <= 2.0
    pmin = min(feeder.samples) if feeder.samples else None
    pmax = max(feeder.samples) if feeder.samples else None
    notes = (f"{ctx.s.pending_rate:.0f} req/s to each side at the same time (requests alternate between the "
             f"two services), open loop, latency from the scheduled send time; pending "
             f"(queue_depth+inflight) during measurement {pmin}–{pmax}; WORKER_COUNT={workers}, "
             f"MAX_CONCURRENT_REQUESTS=10, fake LLM 2 s; generator lag p99 {lag:.2f} ms; non-2xx: "
             f"{status_note(busy_res + idle_res)}; {cpu_note(busy_res, 'service with pending work')}")
    h_p99 = med([r["latency_ms"]["p99"] for r in hang_busy])
    hi_p99 = med([r["latency_ms"]["p99"] for r in hang_idle])
    h_ratios = [b["latency_ms"]["p99"] / i["latency_ms"]["p99"] for b, i in zip(hang_busy, hang_idle)]
    h_ratio = med(h_ratios)
    return [Row("ack_pending", f"ACK p99 with {n:,} interactions waiting on a 2 s LLM",
                f"p99 {fmt_ms(b_p99)} (p50 {fmt_ms(b_p50)})", f"p99 {fmt_ms(i_p99)} (p50 {fmt_ms(i_p50)}), nothing pending",
                f"{ratio:.2f}×", "p99 ≤ 25 ms and ≤ 2×", "met" if met else "MISSED", notes,
                {"service": busy_res, "baseline": idle_res, "ratios": ratios, "pending_samples": feeder.samples}),
            Row("ack_pending", f"  control: the same {n:,} waiting, LLM never answering",
                f"p99 {fmt_ms(h_p99)}", f"p99 {fmt_ms(hi_p99)}, nothing pending", f"{h_ratio:.2f}×",
                "diagnostic", "report",
                f"the fake LLM hangs, so nothing completes during this control ({len(hang_busy)} × {ctx.s.duration:g} s): "
                f"the difference "
                f"from the row above is the cost of the replies completing (10 at a time, every 2 s, in lock step "
                f"with a fixed-delay LLM), not of the waiting; {cpu_note(hang_busy, 'service with pending work')}",
                {"service": hang_busy, "baseline": hang_idle, "ratios": h_ratios})]


def _pending_rounds(ctx: Context, feeder: "Feeder", busy: Proc, idle: Proc, rounds: int, label: str
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    busy_res: list[dict[str, Any]] = []
    idle_res: list[dict[str, Any]] = []
    for i in range(rounds):
        # Both services get the probe at the same time, request by request in turn, so that a
        # burst of other load on the machine hits both sides alike.
        pair = [busy, idle] if i % 2 == 0 else [idle, busy]
        spec = {"mode": "rate", "rate": 2 * ctx.s.pending_rate, "connections": 16, "warmup": 0.5,
                "duration": ctx.s.duration, "targets": [["127.0.0.1", p.port] for p in pair],
                "request": interaction_request(ctx.new_run("p"))}
        feeder.recording = True
        try:
            res = ctx.load(busy, spec, generator="python")
        finally:
            feeder.recording = False
        by_name = dict(zip((p.name for p in pair), res["targets"]))
        for proc, bucket in ((busy, busy_res), (idle, idle_res)):
            bucket.append({**by_name[proc.name], "target_cpu": res["target_cpu"] if proc is busy else None,
                           "gen_cpu": res["gen_cpu"], "foreign_cpu": res["foreign_cpu"], "generator": "python"})
        ctx.log(f"  {label} round {i + 1}/{rounds}")
    return busy_res, idle_res


class Feeder:
    """Keeps `target` pending interactions (queue_depth + inflight) in the service: trigger texts
    from distinct users, so each one waits for the slow LLM."""

    def __init__(self, ctx: Context, svc: Proc, target: int) -> None:
        self.ctx, self.svc, self.target = ctx, svc, target
        self.run = ctx.new_run("f")
        self.sent = 0
        self.recording = False
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def fill(self) -> None:
        spec = {"mode": "closed", "connections": 16, "count": self.target,
                "request": interaction_request(self.run, trigger=True, users=0, channels=0)}
        drive(self.svc, spec, "python", self.ctx.workdir)
        self.sent = self.target
        deadline = time.monotonic() + 20
        while self.svc.pending() < self.target * 0.98 and time.monotonic() < deadline:
            time.sleep(0.1)

    def _post(self, n: int) -> None:
        body = payloads.interaction_body(self.run, n, trigger=True, users=0, channels=0)
        http("POST", self.svc.url + INTERACTION_PATH, body)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                pending = self.svc.pending()
            except Exception:  # noqa: BLE001 - the service may be stopping
                return
            if self.recording:
                self.samples.append(pending)
            for _ in range(max(0, self.target - pending)):
                self._post(self.sent)
                self.sent += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


# ==================================================================================================
# 3. End-to-end replies per second
# ==================================================================================================
def bench_e2e(ctx: Context) -> list[Row]:
    svc = ctx.service("svc-e2e", MAX_QUEUE=100_000, USER_COOLDOWN_S=0, CHANNEL_MAX_REPLIES_PER_MIN=1_000_000)
    base = ctx.baseline()
    ctx.set_fake("ollama", delay=0.0)
    count = ctx.s.e2e_count
    fakes = ctx.fakes()

    def e2e_round(warm: bool = False) -> dict[str, Any]:
        n = 200 if warm else count
        before = ctx.fake_stats("router")
        llm_cpu0, router_cpu0 = _cpu(fakes["ollama"]), _cpu(fakes["router"])
        spec = {"mode": "closed", "connections": ctx.s.connections, "count": n,
                "request": interaction_request(ctx.new_run("e"), trigger=True, users=0, channels=500)}
        if not warm:
            ctx.wait_quiet()
        cpu0 = svc.cpu_seconds()
        res = drive(svc, spec, "python", ctx.workdir, ctx.ours())
        deadline = time.monotonic() + 60 + n / 50
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:  # until every reply is in, or nothing moves for 1 s
            stats = ctx.fake_stats("router")
            got = stats["replies"] - before["replies"]
            if got >= res["ok"] and svc.pending() == 0:
                break
            if got != last:
                last, still_since = got, time.monotonic()
            elif time.monotonic() - still_since > 1.0 and svc.pending() == 0:
                break
            time.sleep(0.05)
        stats = ctx.fake_stats("router")
        replies = stats["replies"] - before["replies"]
        span = (stats["last_reply_at"] or time.monotonic()) - res["t_start"]
        res.update(replies=replies, fallbacks=stats["fallbacks"] - before["fallbacks"],
                   e2e_rps=replies / span if span > 0 else 0.0, e2e_span=span,
                   svc_cpu=(svc.cpu_seconds() - cpu0) / span if span > 0 else None,
                   llm_cpu=(_cpu(fakes["ollama"]) - llm_cpu0) / span if span > 0 else None,
                   router_cpu=(_cpu(fakes["router"]) - router_cpu0) / span if span > 0 else None)
        return res

    def base_round() -> dict[str, Any]:
        spec = {"mode": "closed", "connections": ctx.s.connections, "count": count,
                "request": interaction_request(ctx.new_run("eb"))}
        return ctx.load(base, spec, generator="python")

    before = svc.outcomes()
    e2e_round(warm=True)
    svc_res, base_res = ctx.alternate(e2e_round, base_round, "e2e")
    after = svc.outcomes()
    outcomes = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after if after.get(k, 0) - before.get(k, 0)}
    ratios = [s["e2e_rps"] / b["rps"] for s, b in zip(svc_res, base_res) if b["rps"]]
    e2e = med([r["e2e_rps"] for r in svc_res])
    b_rps = med([r["rps"] for r in base_res])
    lost = sum(r["ok"] - r["replies"] for r in svc_res)
    notes = (f"{count:,} trigger interactions per round from {ctx.s.connections} conns (distinct users), "
             f"rate = replies at the fake router ÷ (last reply − first request); fallbacks "
             f"{sum(r['fallbacks'] for r in svc_res)}, accepted-but-not-replied {lost}; outcomes {outcomes}; "
             f"service CPU per reply (ACK included) "
             f"{med([r['svc_cpu'] / r['e2e_rps'] * 1e6 for r in svc_res if r['svc_cpu'] and r['e2e_rps']]):.0f} µs; "
             f"service CPU {med([r['svc_cpu'] for r in svc_res if r['svc_cpu'] is not None]):.2f}, fake LLM "
             f"{med([r['llm_cpu'] for r in svc_res if r['llm_cpu'] is not None]):.2f}, fake router "
             f"{med([r['router_cpu'] for r in svc_res if r['router_cpu'] is not None]):.2f}, generator "
             f"{med([r['gen_cpu'] for r in svc_res]):.2f} cores; non-2xx {status_note(svc_res)}")
    return [Row("e2e", "End-to-end replies/s (trigger text, instant fake LLM, fake router)",
                f"{fmt_rps(e2e)} replies/s", f"{fmt_rps(b_rps)} req/s (baseline ACK, same generator)",
                f"{med(ratios):.2f}×", "report", "report", notes,
                {"service": svc_res, "baseline": base_res, "ratios": ratios, "outcomes": outcomes})]


# ==================================================================================================
# 4–6. OpenAI-compatible API
# ==================================================================================================
OPENAI_ENV = {"AI_PROVIDER": "waddleai", "WADDLEAI_MODEL": payloads.OPENAI_MODEL, "VALID_API_KEYS": API_KEY,
              "COMPLETIONS_RATE_PER_MIN": 1_000_000_000, "MAX_CONCURRENT_REQUESTS": 64}
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def openai_service(ctx: Context, stream: bool = False) -> tuple[Proc | None, str]:
    """The service for the OpenAI benchmarks, or (None, why not) when the endpoint is not there."""
    svc = ctx.service("svc-openai", **OPENAI_ENV)
    code, body, headers = http("POST", svc.url + OPENAI_PATH, payloads.openai_body(stream), AUTH)
    if code == 404:
        return None, "not available yet: POST /v1/chat/completions answers 404"
    if code != 200:
        return None, f"not available: POST /v1/chat/completions answered {code}: {str(body)[:160]}"
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if stream and "text/event-stream" not in ctype:
        return None, f"streaming not available: content-type {ctype!r}"
    if not stream and not (isinstance(body, dict) and body.get("object") == "chat.completion"):
        return None, f"not available: answer is not a chat.completion object: {str(body)[:160]}"
    return svc, ""


def openai_request(stream: bool = False) -> dict[str, Any]:
    return {"kind": "openai", "path": OPENAI_PATH, "headers": AUTH, "stream": stream}


def skipped(key: str, title: str, target: str, why: str) -> Row:
    return Row(key, title, "—", "—", "—", target, "skipped", why)


def bench_openai_latency(ctx: Context) -> list[Row]:
    title = "OpenAI /v1/chat/completions added latency, 1 conn, non-streaming"
    svc, why = openai_service(ctx)
    if svc is None:
        return [skipped("openai_latency", title, "≤ 1.5 ms at p50", why)]
    direct, floors = ctx.fakes()["openai"], ctx.openai_floors()
    spec = closed(ctx, openai_request(), connections=1)
    svc_res, dir_res, *floor_res = ctx.rotate(
        [lambda target=target: ctx.load(target, spec) for target in (svc, direct, *floors)], "openai_latency")
    added = p50_diffs(svc_res, dir_res, "latency_ms")
    added99 = [s["latency_ms"]["p99"] - d["latency_ms"]["p99"] for s, d in zip(svc_res, dir_res)]
    a50 = med(added)
    s50, d50 = med([r["latency_ms"]["p50"] for r in svc_res]), med([r["latency_ms"]["p50"] for r in dir_res])
    floor_cpu = ", ".join(f"{name} {cpu_per_request_us(res):.0f} µs" for name, res in
                          zip(("SDK floor", "Quart + aiohttp floor", "Hypercorn + aiohttp floor"), floor_res))
    notes = (f"added p99 {med(added99):+.2f} ms; AI_PROVIDER=waddleai → fake OpenAI (same request both ways); "
             f"non-2xx {status_note(svc_res)}; CPU per request: service {cpu_per_request_us(svc_res):.0f} µs, "
             f"{floor_cpu}, fake provider direct {cpu_per_request_us(dir_res):.0f} µs; {cpu_note(svc_res, 'service')}")
    return [Row("openai_latency", title, f"p50 {fmt_ms(s50)} → added {a50:+.2f} ms",
                f"p50 {fmt_ms(d50)} (fake provider direct)", f"{s50 / d50:.2f}×", "≤ 1.5 ms at p50",
                "met" if a50 <= 1.5 else "MISSED", notes,
                {"service": svc_res, "baseline": dir_res, **dict(zip(FLOOR_KEYS, floor_res)), "added_p50": added}),
            *floor_rows("openai_latency", "latency_ms", "p50", svc_res, dir_res, floor_res, LATENCY_FLOORS)]


# The rungs of the floor ladder, highest first (Context.openai_floors): their keys in the results,
# and per benchmark (title, what it is, what the rung above adds over it).
FLOOR_KEYS = ("floor", "floor_quart_aiohttp", "floor_asgi_aiohttp")
LATENCY_FLOORS = (
    ("  floor: bare Quart + the same SDK call, 1 conn",
     "bench/baseline_app.py: a bare Quart app under the same Hypercorn/uvloop that parses the body and makes the "
     "service's own provider call (the openai SDK's client.post on the same aiohttp transport), handing the "
     "upstream's bytes back unread; rotated with the sides above and below",
     "the service's own share (auth, validation, routing, breaker, limits, metrics, log line, response body)"),
    ("  floor: bare Quart + a bare aiohttp call, 1 conn",
     "bench/proxy_floors.py quart: the same bare Quart app sending the body with one aiohttp.ClientSession "
     "(the client under the service's transport), no SDK",
     "the SDK call over a bare aiohttp call (the openai client's request building, httpx2, the transport adapter)"),
    ("  floor: Hypercorn + a bare aiohttp call (raw ASGI, no framework), 1 conn",
     "bench/proxy_floors.py asgi: a raw ASGI callable under the same Hypercorn/uvloop making the same aiohttp call",
     "Quart over raw ASGI"),
)
TTFT_FLOORS = (
    ("  floor: bare Quart relaying the same SDK stream, 1 conn",
     "the SDK floor proxy of the row above (bench/baseline_app.py), relaying the upstream's SSE bytes as they come "
     "(no parsing, no re-encoding); rotated with the sides above and below",
     "the service's own share (SSE parsing, failover before the first chunk, re-encoded chunks, metrics)"),
    ("  floor: bare Quart relaying a bare aiohttp stream, 1 conn",
     "bench/proxy_floors.py quart, relaying the aiohttp response's bytes as they come, no SDK",
     "the SDK's streamed call over a bare aiohttp one"),
    ("  floor: Hypercorn relaying a bare aiohttp stream (raw ASGI, no framework), 1 conn",
     "bench/proxy_floors.py asgi, relaying the same way", "Quart over raw ASGI"),
)


def p50_diffs(a: list[dict[str, Any]], b: list[dict[str, Any]], metric: str) -> list[float]:
    """Per round: a's p50 of `metric` minus b's (rounds run seconds apart, so each pair is comparable)."""
    return [x[metric]["p50"] - y[metric]["p50"] for x, y in zip(a, b)]


def floor_rows(key: str, metric: str, label: str, svc_res: list[dict[str, Any]], dir_res: list[dict[str, Any]],
               floor_res: list[list[dict[str, Any]]], rungs: tuple[tuple[str, str, str], ...]) -> list[Row]:
    """The diagnostic rows of the OpenAI floor proxies: what each adds over the fake, and what the rung
    above it (the service, for the highest) adds over it."""
    rows, above = [], svc_res
    d50 = med([r[metric]["p50"] for r in dir_res])
    for (title, what, step), res in zip(rungs, floor_res):
        f50 = med([r[metric]["p50"] for r in res])
        added, step_p50 = p50_diffs(res, dir_res, metric), p50_diffs(above, res, metric)
        rows.append(Row(key, title, f"{label} {fmt_ms(f50)} → added {med(added):+.2f} ms",
                        f"{label} {fmt_ms(d50)} (fake provider direct)", f"{f50 / d50:.2f}×", "diagnostic",
                        "report", f"{what}. {step[0].upper()}{step[1:]}: {label} {med(step_p50):+.2f} ms over this floor",
                        {"floor": res, "added_p50": added, "above_over_floor_p50": step_p50}))
        above = res
    return rows


def bench_openai_throughput(ctx: Context) -> list[Row]:
    title = f"OpenAI /v1/chat/completions, {ctx.s.connections} conns, non-streaming"
    svc, why = openai_service(ctx)
    if svc is None:
        return [skipped("openai_throughput", title, "report", why)]
    direct = ctx.fakes()["openai"]
    svc_res, dir_res = ctx.alternate(
        lambda: ctx.load(svc, closed(ctx, openai_request())),
        lambda: ctx.load(direct, closed(ctx, openai_request())), "openai_throughput")
    ratios = [s["rps"] / d["rps"] for s, d in zip(svc_res, dir_res) if d["rps"]]
    s_rps, d_rps = med([r["rps"] for r in svc_res]), med([r["rps"] for r in dir_res])
    s99 = med([r["latency_ms"]["p99"] for r in svc_res])
    notes = (f"non-2xx {status_note(svc_res)}; CPU per request: service {cpu_per_request_us(svc_res):.0f} µs, "
             f"fake provider direct {cpu_per_request_us(dir_res):.0f} µs; {cpu_note(svc_res, 'service')}; "
             f"direct: {cpu_note(dir_res, 'fake provider')}")
    return [Row("openai_throughput", title, f"{fmt_rps(s_rps)} req/s (p99 {fmt_ms(s99)})",
                f"{fmt_rps(d_rps)} req/s (fake provider direct)", f"{med(ratios):.2f}×", "report", "report",
                notes, {"service": svc_res, "baseline": dir_res, "ratios": ratios})]


def bench_openai_ttft(ctx: Context) -> list[Row]:
    title = "OpenAI streaming: time to first token added, 1 conn"
    svc, why = openai_service(ctx, stream=True)
    if svc is None:
        return [skipped("openai_ttft", title, "≤ 2 ms at p50", why)]
    direct, floors = ctx.fakes()["openai"], ctx.openai_floors()
    ctx.set_fake("openai", token_delay=0.01)  # tokens 10 ms apart: a buffering proxy could not hide
    try:
        spec = {"mode": "closed", "connections": 1, "duration": ctx.s.duration, "warmup": ctx.s.warmup,
                "ttft": True, "request": openai_request(stream=True)}
        svc_res, dir_res, *floor_res = ctx.rotate(
            [lambda target=target: ctx.load(target, spec, "python") for target in (svc, direct, *floors)],
            "openai_ttft")
    finally:
        ctx.set_fake("openai", token_delay=0.0)
    everything = {"service": svc_res, "baseline": dir_res, **dict(zip(FLOOR_KEYS, floor_res))}
    missing = [r for side in everything.values() for r in side if not r.get("ttft_ms")]
    if missing:
        return [Row("openai_ttft", title, "—", "—", "—", "≤ 2 ms at p50", "error",
                    "no token seen in the SSE stream", everything)]
    added = p50_diffs(svc_res, dir_res, "ttft_ms")
    s50, d50 = med([r["ttft_ms"]["p50"] for r in svc_res]), med([r["ttft_ms"]["p50"] for r in dir_res])
    total_s, total_d = med([r["latency_ms"]["p50"] for r in svc_res]), med([r["latency_ms"]["p50"] for r in dir_res])
    a50 = med(added)
    notes = (f"fake streams a token every 10 ms; whole stream p50 {fmt_ms(total_s)} via service vs "
             f"{fmt_ms(total_d)} direct (a buffering proxy would show TTFT ≈ whole stream); "
             f"non-2xx {status_note(svc_res)}")
    return [Row("openai_ttft", title, f"TTFT p50 {fmt_ms(s50)} → added {a50:+.2f} ms",
                f"TTFT p50 {fmt_ms(d50)} (fake provider direct)", f"{s50 / d50:.2f}×", "≤ 2 ms at p50",
                "met" if a50 <= 2.0 else "MISSED", notes, {**everything, "added_p50": added}),
            *floor_rows("openai_ttft", "ttft_ms", "TTFT p50", svc_res, dir_res, floor_res, TTFT_FLOORS)]


# ==================================================================================================
# 7. Memory
# ==================================================================================================
def bench_memory(ctx: Context) -> list[Row]:
    small, large = ctx.s.memory_counts
    ctx.set_fake("ollama", delay=0.0)
    svc = ctx.service("svc-mem")  # default settings
    time.sleep(2.0)
    start = svc.memory()["VmRSS"]
    base_rss = ctx.baseline().memory()["VmRSS"]
    run = ctx.new_run("m")
    before = ctx.fake_stats("router")["replies"]

    def send(offset: int, count: int) -> dict[str, Any]:
        spec = {"mode": "closed", "connections": 16, "count": count,
                "pace": {"path": "/api/v1/ai/status", "max_pending": 500},
                "request": interaction_request(run, trigger=10, users=0, channels=0, offset=offset)}
        res = drive(svc, spec, "python", ctx.workdir, ctx.ours())
        deadline = time.monotonic() + 120
        while svc.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        return res

    t0 = time.monotonic()
    first = send(0, small)
    at_small = svc.memory()
    second = send(small, large - small)
    at_large = svc.memory()
    elapsed = time.monotonic() - t0
    replies = ctx.fake_stats("router")["replies"] - before
    outcomes = svc.outcomes()
    ctx.stop_service("svc-mem")
    growth = at_large["VmRSS"] / at_small["VmRSS"] - 1
    non2xx = status_note([first, second])
    data = {"start": start, "small": at_small, "large": at_large, "baseline_start": base_rss,
            "replies": replies, "outcomes": outcomes, "elapsed": elapsed}
    return [
        Row("memory", "Memory: RSS after start", f"{start:.1f} MB", f"bare Quart app {base_rss:.1f} MB",
            f"{start / base_rss:.2f}×", "≤ 80 MB", "met" if start <= 80 else "MISSED",
            "VmRSS 2 s after /health answers, default settings, in-memory mode", data),
        Row("memory", f"Memory: RSS growth {small:,} → {large:,} interactions",
            f"{at_small['VmRSS']:.1f} → {at_large['VmRSS']:.1f} MB ({growth * 100:+.1f} %)",
            f"{start:.1f} MB after start", f"{at_large['VmRSS'] / start:.2f}× start", "growth ≤ 20 %",
            "met" if growth <= 0.20 else "MISSED",
            f"distinct user per interaction, new channel every 10, every 10th a trigger text (LLM + router, "
            f"context), the rest quiet; paced to ≤ 500 pending; peak RSS {at_large['VmHWM']:.1f} MB; {replies:,} replies "
            f"posted; outcomes {({k: int(v) for k, v in outcomes.items() if v})}; non-2xx {non2xx}; "
            f"{elapsed:.0f} s", data),
    ]


# ==================================================================================================
# 8. PostgreSQL mode
# ==================================================================================================
def create_bench_database() -> str | None:
    """(Re)create the bench database; returns an error text when PostgreSQL is not reachable."""
    import asyncio

    async def go() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN_ADMIN, timeout=5)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        finally:
            await conn.close()

    try:
        asyncio.run(go())
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


def bench_pg_ack(ctx: Context) -> list[Row]:
    title = "PostgreSQL mode ACK throughput (durable enqueue)"
    error = create_bench_database()
    if error:
        return [skipped("pg_ack", title, "≥ 0.5× in-memory", f"PostgreSQL not reachable: {error}")]
    dsn = f"postgresql://postgres@127.0.0.1:5432/{PG_DATABASE}"
    try:
        pg = ctx.service("svc-pg", DATABASE_URL=dsn, **ACK_ENV)
    except StartError as exc:
        tail = str(exc).splitlines()
        return [skipped("pg_ack", title, "≥ 0.5× in-memory",
                        "not available yet: the service does not start with DATABASE_URL (" +
                        " | ".join(line.strip() for line in tail[-3:] if line.strip())[:300] + ")")]
    try:
        durable = pg.status().get("durable")
    except Exception as exc:  # noqa: BLE001
        durable = f"status failed: {exc}"
    if durable is not True:
        ctx.stop_service("svc-pg")
        return [skipped("pg_ack", title, "≥ 0.5× in-memory",
                        f"not available yet: started with DATABASE_URL but /api/v1/ai/status says durable={durable!r}")]
    mem = ctx.service("svc-memory", **ACK_ENV)
    pg_cpu = postgres_cpu_seconds(PG_DATABASE)
    pg_res, mem_res = ctx.alternate(
        lambda: ctx.load(pg, closed(ctx, interaction_request(ctx.new_run("g"))), extra=pg_cpu),
        lambda: ctx.load(mem, closed(ctx, interaction_request(ctx.new_run("h"))), extra=pg_cpu), "pg_ack")
    ctx.stop_service("svc-pg")
    ratios = [p["rps"] / m["rps"] for p, m in zip(pg_res, mem_res) if m["rps"]]
    ratio = med(ratios)
    p_rps, m_rps = med([r["rps"] for r in pg_res]), med([r["rps"] for r in mem_res])
    p99 = med([r["latency_ms"]["p99"] for r in pg_res])
    backends = med([r["extra_cpu"] for r in pg_res if r.get("extra_cpu") is not None])
    notes = (f"{ctx.s.connections} conns, quiet texts; CPU per request: service in PG mode "
             f"{cpu_per_request_us(pg_res):.0f} µs (+ PostgreSQL backends "
             f"{med([r['extra_cpu'] / r['rps'] * 1e6 for r in pg_res if r.get('extra_cpu') and r['rps']]):.0f} µs), "
             f"in memory {cpu_per_request_us(mem_res):.0f} µs; non-2xx: PG {status_note(pg_res)}, memory "
             f"{status_note(mem_res)}; PG mode: {cpu_note(pg_res, 'service')}, PostgreSQL backends of "
             f"{PG_DATABASE} {backends:.2f} cores; memory mode: {cpu_note(mem_res, 'service')}")
    return [Row("pg_ack", title, f"{fmt_rps(p_rps)} req/s (p99 {fmt_ms(p99)})", f"{fmt_rps(m_rps)} req/s in memory",
                f"{ratio:.2f}×", "≥ 0.5× in-memory", "met" if ratio >= 0.5 else "MISSED", notes,
                {"service": pg_res, "baseline": mem_res, "ratios": ratios})]


# ==================================================================================================
# 9. Profile under the ACK load
# ==================================================================================================
def _profiled(ctx: Context, name: str, target: Proc, spec: dict[str, Any], generator: str | None = None
              ) -> dict[str, Any]:
    raw = ctx.workdir / f"profile-{name}.txt"
    spy = profile.start(target.pid, ctx.s.profile_s + 1, raw)
    time.sleep(0.5)
    res = ctx.load(target, spec, generator)
    _, err = spy.communicate(timeout=ctx.s.profile_s + 30)
    if not raw.exists():
        raise RuntimeError(f"py-spy failed: {err.decode()[-300:]}")
    summary = profile.summarize(raw)
    summary["requests"] = res["ok"]
    summary["name"] = name
    (ctx.workdir / f"profile-{name}.summary.txt").write_text(profile.render(summary))
    return summary


def bench_profile(ctx: Context) -> list[Row]:
    """py-spy on the service (and on the bare baseline) under the ACK load."""
    title = "Profile of the service under the ACK load (py-spy)"
    if not profile.py_spy():
        return [skipped("profile", title, "—", "py-spy not installed: .venv/bin/pip install py-spy")]
    svc = ctx.service("svc-memory", **ACK_ENV)
    base = ctx.baseline()
    spec = {"mode": "closed", "connections": ctx.s.connections, "duration": ctx.s.profile_s,
            "request": interaction_request(ctx.new_run("prof"))}
    out = {"service": _profiled(ctx, "ack-service", svc, spec),
           "baseline": _profiled(ctx, "ack-baseline", base, {**spec, "request": interaction_request(ctx.new_run("prof"))})}
    return [Row("profile", title, f"{out['service']['samples']} samples, {out['service']['requests']:,} requests",
                f"{out['baseline']['samples']} samples, {out['baseline']['requests']:,} requests", "—", "—",
                "report", "", out)]


def bench_profile_e2e(ctx: Context) -> list[Row]:
    """py-spy on the service while it replies to trigger messages (fake LLM at once, fake router)."""
    title = "Profile of the service replying end to end (py-spy)"
    if not profile.py_spy():
        return [skipped("profile_e2e", title, "—", "py-spy not installed")]
    svc = ctx.service("svc-e2e", MAX_QUEUE=100_000, USER_COOLDOWN_S=0, CHANNEL_MAX_REPLIES_PER_MIN=1_000_000)
    ctx.set_fake("ollama", delay=0.0)
    # paced closed loop: at most 200 waiting, so the profile shows processing, not a growing queue
    spec = {"mode": "closed", "connections": 8, "duration": ctx.s.profile_s, "warmup": 0,
            "pace": {"path": "/api/v1/ai/status", "max_pending": 200},
            "request": interaction_request(ctx.new_run("pe"), trigger=True, users=0, channels=500)}
    summary = _profiled(ctx, "e2e-service", svc, spec, "python")
    return [Row("profile_e2e", title, f"{summary['samples']} samples", "—", "—", "—", "report", "",
                {"service": summary})]


def bench_profile_openai(ctx: Context) -> list[Row]:
    """py-spy on the service proxying /v1/chat/completions (32 connections, non-streaming)."""
    title = "Profile of the service under the OpenAI load (py-spy)"
    if not profile.py_spy():
        return [skipped("profile_openai", title, "—", "py-spy not installed")]
    svc, why = openai_service(ctx)
    if svc is None:
        return [skipped("profile_openai", title, "—", why)]
    spec = {"mode": "closed", "connections": ctx.s.connections, "duration": ctx.s.profile_s,
            "request": openai_request()}
    summary = _profiled(ctx, "openai-service", svc, spec)
    return [Row("profile_openai", title, f"{summary['samples']} samples, {summary['requests']:,} requests",
                "—", "—", "—", "report", "", {"service": summary})]


BENCHMARKS: dict[str, Callable[[Context], list[Row]]] = {
    "ack": bench_ack,
    "ack_pending": bench_ack_pending,
    "e2e": bench_e2e,
    "openai_latency": bench_openai_latency,
    "openai_throughput": bench_openai_throughput,
    "openai_ttft": bench_openai_ttft,
    "memory": bench_memory,
    "pg_ack": bench_pg_ack,
    "profile": bench_profile,
    "profile_e2e": bench_profile_e2e,
    "profile_openai": bench_profile_openai,
}


def run_one(ctx: Context, name: str) -> list[Row]:
    try:
        return BENCHMARKS[name](ctx)
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        ctx.log(traceback.format_exc())
        return [Row(name, name, "—", "—", "—", "—", "error", f"{type(exc).__name__}: {exc}"[:400])]
