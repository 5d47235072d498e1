"""The rows. Each measures the service — with --against, also the service at an older commit — and a
reference side in the same run, the sides alternating by round (A B C, C B A, …). A row gives medians
over rounds and, per code version, the median of the per-round ratios to the reference; `figures`
(per version and round) are what new/old compares."""

from __future__ import annotations

import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from bench import payloads
from bench.load import load
from bench.procs import Proc, Procs, StartError, http

INTERACTION = "/api/v1/ai/interaction"
OPENAI_PATH = "/v1/chat/completions"
AUTH = {"Authorization": "Bearer bench-key"}
OPENAI_ENV = {"AI_PROVIDER": "waddleai", "WADDLEAI_MODEL": payloads.OPENAI_MODEL, "VALID_API_KEYS": "bench-key",
              "COMPLETIONS_RATE_PER_MIN": 1_000_000_000, "MAX_CONCURRENT_REQUESTS": 64}
Results = list[dict[str, Any]]


@dataclass
class Settings:
    rounds: int = 5
    duration: float = 3.0  # seconds per measured run (whole seconds with wrk)
    warmup: float = 1.0
    connections: int = 32
    pending: int = 1000
    memory: tuple[int, int] = (10_000, 100_000)
    generator: str = "wrk"  # wrk | python
    server: str = "hypercorn"  # hypercorn | uvicorn


@dataclass
class Row:
    name: str
    title: str
    ref: str  # the reference side's figure
    target: str = ""
    higher_better: bool = True  # for `figures`
    cells: dict[str, str] = field(default_factory=dict)  # per code version: "new", "old"
    ratios: dict[str, str] = field(default_factory=dict)
    figures: dict[str, list[float]] = field(default_factory=dict)
    notes: str = ""


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def rps(res: Results) -> str:
    return f"{med([r['rps'] for r in res]):,.0f} req/s"


def ms(res: Results, key: str) -> str:
    return f"{med([r[key] for r in res]):.2f} ms"


class Harness:
    """The processes and measuring helpers of one run (one server)."""

    def __init__(self, s: Settings, versions: dict[str, Path], labels: dict[str, str], workdir: Path,
                 log: Callable[[str], None]) -> None:
        self.s, self.versions, self.labels, self.log = s, versions, {**labels, "ref": "reference"}, log
        self.procs = Procs(workdir, s.server)
        self._fakes: dict[str, Proc] = {}
        self._bare: Proc | None = None
        self._runs = 0
        self.tag = f"{time.strftime('%H%M%S')}{s.server[0]}"

    def fake(self, kind: str) -> Proc:
        if not self._fakes:
            self._fakes = {k: self.procs.fake(k) for k in ("ollama", "openai", "router")}
        return self._fakes[kind]

    def bare(self) -> Proc:
        if self._bare is None:
            self._bare = self.procs.bare()
        return self._bare

    @contextmanager
    def faked(self, kind: str, **knobs: Any) -> Iterator[None]:
        """The fake `kind` with these knobs (bench/fakes.py) for the time of the block, as it was after."""
        previous = self._set_fake(kind, knobs)
        try:
            yield
        finally:
            self._set_fake(kind, previous)

    def streamed_answers(self) -> Any:
        """The fake OpenAI upstream answering the streaming rows' reply: a chunk per word, STREAM_GAP_S apart."""
        return self.faked("openai", token_delay=payloads.STREAM_GAP_S, reply=payloads.STREAM_REPLY)

    def _set_fake(self, kind: str, knobs: dict[str, Any]) -> dict[str, Any]:
        code, body, _ = http("POST", self.fake(kind).url + "/__bench/set", knobs)
        if code != 200:
            raise RuntimeError(f"fake {kind} refused {knobs}: {body}")
        return body["previous"]

    def calls(self, kind: str) -> dict[str, Any]:
        return http("GET", self.fake(kind).url + "/__bench/stats")[1]

    def services(self, name: str, **env: Any) -> tuple[dict[str, Proc], dict[str, str]]:
        """The service of every code version with these settings: (started, why not) by version."""
        env = {"OLLAMA_HOST": "127.0.0.1", "OLLAMA_PORT": self.fake("ollama").port,
               "WADDLEAI_BASE_URL": self.fake("openai").url, "WADDLEAI_API_KEY": "bench-upstream-key",
               "ROUTER_API_URL": self.fake("router").url + "/api/v1/router", "SHUTDOWN_GRACE_S": 3, **env}
        started, failed = {}, {}
        for version, app_dir in self.versions.items():
            try:
                started[version] = self.procs.service(f"{name}-{version}", app_dir, env)
            except StartError as exc:
                failed[version] = f"could not start under {self.s.server} ({exc})"
                self.log(f"  {self.labels[version]}: {failed[version]}")
        return started, failed

    def run_id(self) -> str:
        self._runs += 1
        return f"{self.tag}r{self._runs}"

    def load(self, proc: Proc, spec: dict[str, Any], generator: str | None = None) -> dict[str, Any]:
        spec = {"path": INTERACTION, "duration": self.s.duration, "warmup": self.s.warmup,
                "connections": self.s.connections, **spec}
        if spec["kind"] == "interaction" and "run" not in spec:
            spec["run"] = self.run_id()
        return load(proc, spec, generator or self.s.generator)

    def rounds(self, sides: dict[str, Callable[[], dict[str, Any]]], label: str) -> dict[str, Results]:
        """Every side once per round, the order reversed every other round: given as new, reference, old,
        new and old take the same places on average."""
        out: dict[str, Results] = {key: [] for key in sides}
        for i in range(self.s.rounds):
            for key in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                out[key].append(sides[key]())
            self.log(f"  {label} round {i + 1}/{self.s.rounds}")
        return out

    def versus(self, svcs: dict[str, Proc], ref: Proc, spec: dict[str, Any], label: str,
               generator: str | None = None) -> dict[str, Results]:
        return self.rounds(self.ordered({v: partial(self.load, proc, spec, generator) for v, proc in svcs.items()},
                                        partial(self.load, ref, spec, generator)), label)

    @staticmethod
    def ordered(sides: dict[str, Callable[[], dict[str, Any]]], ref: Callable[[], dict[str, Any]]
                ) -> dict[str, Callable[[], dict[str, Any]]]:
        return {k: f for k, f in (("new", sides.get("new")), ("ref", ref), ("old", sides.get("old"))) if f}

    def note(self, res: dict[str, Results], what: str, key: str, unit: str = "µs") -> str:
        return f"{what}: " + ", ".join(f"{self.labels.get(k, k)} {med([r[key] for r in rs]):,.0f} {unit}"
                                       for k, rs in res.items())

    def non2xx(self, res: dict[str, Results]) -> str:
        counts = {k: sum(sum(r["non2xx"].values()) + r["errors"] for r in rs) for k, rs in res.items()}
        return ", ".join(f"{self.labels.get(k, k)} {n}" for k, n in counts.items() if n) or "none"

    def close(self) -> None:
        self.procs.close()


def fill(row: Row, h: Harness, res: dict[str, Results], failed: dict[str, str],
         figure: Callable[[dict, dict], float], ratio: Callable[[dict, dict], float],
         cell: Callable[[Results, list[float]], str], refs: dict[str, Results] | None = None) -> Row:
    for v in h.versions:
        if v not in res:
            row.cells[v] = failed.get(v, "—")
            continue
        pairs = list(zip(res[v], (refs or {}).get(v) or res["ref"]))
        row.figures[v] = [figure(a, b) for a, b in pairs]
        row.ratios[v] = f"{med([ratio(a, b) for a, b in pairs]):.2f}×"
        row.cells[v] = cell(res[v], row.figures[v])
    return row


# --- ACK throughput against the bare app -----------------------------------------------------------
def ack(h: Harness) -> list[Row]:
    svcs, failed = h.services("ack", MAX_QUEUE=100_000)  # the queue never limits (429s would show)
    llm_calls = h.calls("ollama")["calls"]
    try:
        res = h.versus(svcs, h.bare(), {"kind": "interaction"}, "ack")
    finally:
        h.procs.stop(*svcs.values())
    llm_calls = h.calls("ollama")["calls"] - llm_calls
    row = Row("ack", f"ACK throughput, POST {INTERACTION}, {h.s.connections} conns",
              f"{rps(res['ref'])} (p99 {ms(res['ref'], 'p99')}), bare Quart app", "≥ 0.80×")
    fill(row, h, res, failed, lambda a, b: a["rps"], lambda a, b: div(a["rps"], b["rps"]),
         lambda r, f: f"{rps(r)} (p99 {ms(r, 'p99')})")
    row.notes = (f"{h.note(res, 'CPU per request', 'cpu_us')}; non-2xx and errors: {h.non2xx(res)}; "
                 f"fake LLM calls {llm_calls} (quiet texts: 0 expected)")
    return [row]


# --- ACK p99 with 1,000 interactions pending, against the same service idle -----------------------------
class Feeder(threading.Thread):
    """Keeps `target` interactions pending in a service: trigger texts from distinct users, each waiting
    on the slow fake LLM. Tops up every 0.2 s from /api/v1/ai/status."""

    def __init__(self, h: Harness, proc: Proc, target: int) -> None:
        super().__init__(daemon=True)
        self.h, self.proc, self.target, self.run_id = h, proc, target, h.run_id()
        self.halt = threading.Event()
        self.samples: list[int] = []

    def fill(self) -> None:
        self.h.load(self.proc, {"kind": "interaction", "run": self.run_id, "trigger": True, "users": 0,
                                "channels": 0, "count": self.target, "connections": 16, "warmup": 0}, "python")
        self.sent = self.target

    def run(self) -> None:
        while not self.halt.wait(0.2):
            try:
                pending = self.proc.pending()
                self.samples.append(pending)
                for _ in range(max(0, self.target - pending)):
                    body = payloads.interaction_body(self.run_id, self.sent, True, 0, 0)
                    http("POST", self.proc.url + INTERACTION, body)
                    self.sent += 1
            except (OSError, RuntimeError):
                return  # the service is stopping


def ack_pending(h: Harness) -> list[Row]:
    n = h.s.pending
    env = {"MAX_QUEUE": max(5000, 4 * n), "WORKER_COUNT": min(1024, n + 24), "MAX_CONCURRENT_REQUESTS": 10,
           "USER_COOLDOWN_S": 0, "CHANNEL_MAX_REPLIES_PER_MIN": 1_000_000, "REQUEST_TIMEOUT": 120}
    with h.faked("ollama", delay=2.0):  # every reply waits 2 s: the interactions stay pending
        busy, failed = h.services("busy", **env)
        idle, failed_idle = h.services("idle", **env)
        failed.update(failed_idle)
        feeders = [Feeder(h, busy[v], n) for v in busy if v not in failed]
        spec = {"kind": "interaction", "connections": 8, "delay_ms": 40}  # ≈ 200 req/s, far below saturation
        try:
            for feeder in feeders:
                feeder.fill()
                feeder.start()
            sides: dict[str, Callable[[], dict[str, Any]]] = {}
            for v in busy:
                if v not in failed:
                    sides[v], sides[f"{v} idle"] = partial(h.load, busy[v], spec), partial(h.load, idle[v], spec)
            res = h.rounds(sides, "ack_pending")
        finally:
            for feeder in feeders:
                feeder.halt.set()
                feeder.join(5)
            h.procs.stop(*busy.values(), *idle.values())
    idles = {v: res[f"{v} idle"] for v in h.versions if f"{v} idle" in res}
    seen = [x for feeder in feeders for x in feeder.samples]
    row = Row("ack_pending", f"ACK p99 with {n:,} interactions pending on a 2 s LLM, ≈200 req/s",
              "; ".join(f"p99 {ms(r, 'p99')} ({h.labels[v]}, idle)" for v, r in idles.items()) or "—",
              "≤ 2× (p99 ≤ 25 ms)", higher_better=False)
    fill(row, h, res, failed, lambda a, b: a["p99"], lambda a, b: div(a["p99"], b["p99"]),
         lambda r, f: f"p99 {ms(r, 'p99')} (p50 {ms(r, 'p50')})", idles)
    row.notes = (f"8 conns, each waiting 40 ms between answer and next request "
                 f"({h.note(res, 'rate', 'rps', 'req/s')}); "
                 f"pending (queue_depth + inflight) seen {min(seen, default=0)}–{max(seen, default=0)}; "
                 f"non-2xx and errors: {h.non2xx(res)}")
    return [row]


def drain(proc: Proc, limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while proc.pending() and time.monotonic() < deadline:
        time.sleep(0.1)


# --- end-to-end replies per second ---------------------------------------------------------------------
def replies(h: Harness, proc: Proc, spec: dict[str, Any]) -> dict[str, Any]:
    """Trigger texts for a run, then until the service has nothing pending: replies at the fake
    router ÷ (last reply − start)."""
    before, cpu, started = h.calls("router")["calls"], proc.cpu(), time.monotonic()
    res = h.load(proc, spec)
    drain(proc)
    stats = h.calls("router")
    got = stats["calls"] - before
    span = (stats["last_reply_at"] or time.monotonic()) - started
    res.update(replies_s=div(got, span), cpu_reply_us=div(proc.cpu() - cpu, got) * 1e6)
    return res


def e2e(h: Harness) -> list[Row]:
    svcs, failed = h.services("e2e", MAX_QUEUE=100_000, USER_COOLDOWN_S=0, CHANNEL_MAX_REPLIES_PER_MIN=1_000_000)
    spec = {"kind": "interaction", "trigger": True, "users": 0, "warmup": 0}
    try:
        for proc in svcs.values():
            replies(h, proc, {**spec, "duration": 1})  # warm-up: connections to the fakes
        res = h.rounds(h.ordered({v: partial(replies, h, p, spec) for v, p in svcs.items()},
                                 partial(h.load, h.bare(), spec)), "e2e")
    finally:
        h.procs.stop(*svcs.values())
    row = Row("e2e", "End-to-end replies/s (trigger texts, instant fake LLM, fake router)",
              f"{rps(res['ref'])}, bare Quart app ACK, same load")
    fill(row, h, res, failed, lambda a, b: a["replies_s"], lambda a, b: div(a["replies_s"], b["rps"]),
         lambda r, f: f"{med(f):,.0f} replies/s")
    mine = {v: r for v, r in res.items() if v != "ref"}
    row.notes = (f"{h.s.connections} conns for {h.s.duration:g} s, then until nothing is pending; "
                 f"{h.note(mine, 'CPU per reply, ACK included', 'cpu_reply_us')}; non-2xx and errors: {h.non2xx(res)}")
    return [row]


# --- memory ------------------------------------------------------------------------------------------
def memory(h: Harness) -> list[Row]:
    small, large = h.s.memory
    bare = h.procs.bare("bare-fresh")
    time.sleep(1.0)
    bare_rss = bare.rss_mb()
    h.procs.stop(bare)
    svcs, failed = h.services("memory")  # default settings
    time.sleep(1.0)
    got: dict[str, dict[str, Any]] = {}
    try:
        for v, proc in svcs.items():
            m: dict[str, Any] = {"start": proc.rss_mb(), "rejected": 0}
            for key, offset, count in (("small", 0, small), ("large", small, large - small)):
                res = h.load(proc, {"kind": "interaction", "trigger": 10, "users": 0, "channels": 0, "offset": offset,
                                    "count": count, "connections": 8, "warmup": 0}, "python")
                drain(proc)
                m[key], m["rejected"] = proc.rss_mb(), m["rejected"] + sum(res["non2xx"].values()) + res["errors"]
            got[v] = m
    finally:
        h.procs.stop(*svcs.values())
    start = Row("memory", "RSS after start (default settings)", f"{bare_rss:.1f} MB, bare Quart app", "≤ 80 MB",
                higher_better=False)
    growth = Row("memory", f"RSS after {large:,} interactions vs after {small:,}", "the same process", "≤ 1.20×",
                 higher_better=False)
    for v in h.versions:
        if v not in got:
            start.cells[v] = growth.cells[v] = failed.get(v, "—")
            continue
        m = got[v]
        start.cells[v], start.figures[v] = f"{m['start']:.1f} MB", [m["start"]]
        start.ratios[v] = f"{m['start'] / bare_rss:.2f}×"
        growth.cells[v], growth.figures[v] = f"{m['small']:.1f} → {m['large']:.1f} MB", [m["large"]]
        growth.ratios[v] = f"{m['large'] / m['small']:.2f}×"
    growth.notes = ("new user per interaction, new channel every 10, every 10th a trigger text (LLM + router), "
                    "8 conns, drained before each reading; answered non-2xx: "
                    + ", ".join(f"{h.labels[v]} {m['rejected']}" for v, m in got.items()))
    return [start, growth]


# --- OpenAI-compatible API against the fake provider called directly ----------------------------------
def openai(h: Harness) -> list[Row]:
    svcs, failed = h.services("openai", **OPENAI_ENV)
    for v, proc in list(svcs.items()):
        code, body, _ = http("POST", proc.url + OPENAI_PATH, payloads.openai_body(), AUTH)
        if code != 200 or not isinstance(body, dict) or body.get("object") != "chat.completion":
            failed[v] = f"not available: POST {OPENAI_PATH} answered {code}"
            h.procs.stop(svcs.pop(v))
    direct, spec = h.fake("openai"), {"kind": "openai", "path": OPENAI_PATH, "headers": AUTH}
    try:
        lat = h.versus(svcs, direct, {**spec, "connections": 1}, "openai latency")
        thr = h.versus(svcs, direct, spec, "openai throughput")
        with h.faked("openai", token_delay=0.01):  # tokens 10 ms apart: a buffering proxy could not hide
            ttft = h.versus(svcs, direct, {**spec, "stream": True, "connections": 1}, "openai ttft", "python")
    finally:
        h.procs.stop(*svcs.values())
    if any(r["ttft_p50"] is None for rs in ttft.values() for r in rs):
        raise RuntimeError("no token seen in an SSE stream")
    def added(key: str) -> Callable[[dict, dict], float]:
        return lambda a, b: a[key] - b[key]

    rows = [fill(Row("openai", f"OpenAI {OPENAI_PATH}, 1 conn: added p50", f"p50 {ms(lat['ref'], 'p50')}, fake direct",
                     "≤ +1.5 ms", higher_better=False), h, lat, failed, added("p50"),
                 lambda a, b: div(a["p50"], b["p50"]), lambda r, f: f"p50 {ms(r, 'p50')} (added {med(f):+.2f} ms)"),
            fill(Row("openai", f"OpenAI {OPENAI_PATH}, {h.s.connections} conns", f"{rps(thr['ref'])}, fake direct"),
                 h, thr, failed, lambda a, b: a["rps"], lambda a, b: div(a["rps"], b["rps"]), lambda r, f: rps(r)),
            fill(Row("openai", "OpenAI streaming, 1 conn: added time to first token",
                     f"TTFT p50 {ms(ttft['ref'], 'ttft_p50')}, fake direct", "≤ +2 ms", higher_better=False),
                 h, ttft, failed, added("ttft_p50"), lambda a, b: div(a["ttft_p50"], b["ttft_p50"]),
                 lambda r, f: f"TTFT p50 {ms(r, 'ttft_p50')} (added {med(f):+.2f} ms)")]
    rows[0].notes = f"{h.note(lat, 'CPU per request', 'cpu_us')}; non-2xx and errors: {h.non2xx(lat)}"
    rows[1].notes = f"{h.note(thr, 'CPU per request', 'cpu_us')}; non-2xx and errors: {h.non2xx(thr)}"
    rows[2].notes = "the fake streams a token every 10 ms; TTFT = until the first SSE event with delta.content"
    return rows


ROWS: dict[str, Callable[[Harness], list[Row]]] = {
    "ack": ack, "ack_pending": ack_pending, "e2e": e2e, "memory": memory, "openai": openai}


def peers(h: Harness) -> list[Row]:
    from bench.peer_rows import peers as measure  # it builds on this module

    return measure(h)


def floors(h: Harness) -> list[Row]:
    from bench.floor_rows import floors as measure  # it builds on this module

    return measure(h)


ROWS["peers"] = peers
ROWS["floors"] = floors
