"""The `peers` rows: the service's OpenAI-compatible API side by side with the gateways users would
pick instead (bench/peers.py), all over the same fake OpenAI upstream, which is also called directly.
Sides alternate by round; figures are medians over rounds; "added" is a side's figure minus the fake
direct's in the same round; ratios are the service's figure over the best peer's.

1. non-streaming: added p50 at 1 connection, req/s at 32 connections;
2. streaming: K concurrent streams of 100 token chunks 20 ms apart, started spread over one stream's
   length (2 s), and once all K together: added time to the first token chunk (p50, p99), added gap
   between token chunks (p50), and the gateway process's CPU time (/proc) per token chunk relayed.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

from bench import payloads
from bench.load import streamed
from bench.peers import Side, litellm, portkey
from bench.rows import AUTH, OPENAI_ENV, OPENAI_PATH, Harness, Row, med

CHUNKS, CHUNK_GAP, REPLY = payloads.STREAM_CHUNKS, payloads.STREAM_GAP_S, payloads.STREAM_REPLY  # a chunk per word
STREAM_S = CHUNKS * CHUNK_GAP
NAN = float("nan")
METHOD = ("TTFT = to the first token chunk; added = side − fake direct per round; ratios = service ÷ best peer "
          "(ratio of medians; — when the best peer adds ≤ 0.05 ms or no peer streamed); CPU from /proc in 10 ms "
          "ticks ÷ token chunks relayed")


def safe(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A side that breaks mid-run gives its error as its figure; the other sides go on."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - a peer's failure is a result of the row
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def side_streamed(side: Side, spec: dict[str, Any]) -> dict[str, Any]:
    assert side.proc is not None
    return streamed(side.proc, {**spec, "headers": side.headers})


def fig(results: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in results if r.get(key) is not None and not math.isnan(r[key])]
    return med(values) if values else NAN


def added(res: dict[str, list[dict[str, Any]]], side: str, key: str) -> float:
    """Median over rounds of side − fake direct, round by round."""
    pairs = [(a.get(key), b.get(key)) for a, b in zip(res[side], res["direct"])]
    return med([a - b for a, b in pairs if a is not None and b is not None]) if pairs else NAN


def trouble(results: list[dict[str, Any]], streams: int = 0) -> str:
    """'' or what went wrong on this side: errors, failed streams."""
    errors = [r["error"] for r in results if "error" in r and "ok" not in r]
    if errors:
        return f"failed: {errors[0]}"
    if any(r.get("ok") == 0 for r in results):
        r = next(r for r in results if r.get("ok") == 0)
        return f"failed: no 2xx answer ({r.get('error') or r.get('non2xx') or r.get('errors')})"
    failed = sum(r.get("failed", 0) for r in results)
    if streams and failed:
        first = next(r["error"] for r in results if r.get("error"))
        total = streams * len(results)
        return f"{'every stream' if failed == total else f'{failed} of {total} streams'} failed ({first})"
    return ""


def ratio(ours: float, best: float) -> str:
    if math.isnan(ours) or math.isnan(best) or best <= 0.05:
        return "—"
    return f"{ours / best:.2f}×"


def peers(h: Harness) -> list[Row]:
    env = {**OPENAI_ENV, "MAX_CONCURRENT_REQUESTS": 256}  # 100 streams must not queue behind the cap
    svcs, failed = h.services("peers", **env)
    h.procs.stop(*(p for v, p in svcs.items() if v != "new"))  # --against: the peers compare HEAD only
    fake = h.fake("openai")
    sides = {"service": Side(f"this service ({h.s.server})", svcs.get("new"), AUTH,
                             "" if "new" in svcs else f"unavailable: {failed.get('new', '?')}"),
             "litellm": litellm(h.procs, fake.url, payloads.OPENAI_MODEL),
             "portkey": portkey(h.procs, fake.url),
             "direct": Side("fake direct", fake, AUTH)}
    for key, side in sides.items():
        h.labels[key] = side.label
        if side.why:
            h.log(f"  {side.label}: {side.why}")
    live = {k: s for k, s in sides.items() if s.proc is not None}
    base = {"kind": "openai", "path": OPENAI_PATH}
    rows: list[Row] = []
    try:
        lat = h.rounds({k: partial(safe, partial(h.load, s.proc, {**base, "headers": s.headers, "connections": 1}))
                        for k, s in live.items()}, "peers latency")
        thr = h.rounds({k: partial(safe, partial(h.load, s.proc, {**base, "headers": s.headers}))
                        for k, s in live.items()}, "peers throughput")
        rows += nonstreaming(h, sides, lat, thr)
        with h.streamed_answers():
            for s in live.values():  # warm-up: connections to the fake, first-call caches
                safe(partial(side_streamed, s, {**base, "streams": 2, "spread": 0, "duration": 120}))
            ks = (1, 2) if h.s.rounds == 1 and h.s.duration < 1 else (1, 20, 100)  # --smoke: tiny
            for k, spread in [*((k, STREAM_S) for k in ks), (ks[-1], 0.0)]:
                spec = {**base, "streams": k, "spread": spread, "duration": 120}
                how = f"spread over {STREAM_S:g} s" if spread else "all at once"
                res = h.rounds({key: partial(safe, partial(side_streamed, s, spec)) for key, s in live.items()},
                               f"peers {k} streams {how}")
                rows.append(streaming(sides, res, k, how, first=not rows[2:]))
    finally:
        h.procs.stop(*(s.proc for k, s in sides.items() if s.proc is not None and k != "direct"))
    return rows


def cells(sides: dict[str, Side], res: dict[str, list[dict[str, Any]]], show: Callable[[str], str],
          streams: int = 0) -> dict[str, str]:
    out = {}
    for key, side in sides.items():
        out[key] = side.why or trouble(res.get(key, []), streams) or show(key)
    return out


def best_peer(sides: dict[str, Side], value: Callable[[str], float], lower: bool) -> float:
    vals = [value(k) for k in ("litellm", "portkey") if sides[k].proc is not None]
    vals = [v for v in vals if not math.isnan(v)]
    return (min(vals) if lower else max(vals)) if vals else NAN


def make_row(title: str, target: str, sides: dict[str, Side], shown: dict[str, str], ratio_text: str,
             notes: str) -> Row:
    ref = "; ".join(f"{sides[k].label}: {shown[k]}" for k in ("litellm", "portkey", "direct"))
    return Row("peers", title, ref, target, cells={"new": shown["service"]}, ratios={"new": ratio_text},
               notes=notes)


def nonstreaming(h: Harness, sides: dict[str, Side], lat: dict[str, Any], thr: dict[str, Any]) -> list[Row]:
    ok = lambda res, k: k in res and not trouble(res[k])  # noqa: E731
    p50 = {k: added(lat, k, "p50") if ok(lat, k) and ok(lat, "direct") else NAN for k in sides}
    rate = {k: fig(thr[k], "rps") if ok(thr, k) else NAN for k in sides}
    lat_cells = cells(sides, lat, lambda k: (f"p50 {fig(lat[k], 'p50'):.2f} ms" if k == "direct"
                                             else f"{p50[k]:+.2f} ms (p50 {fig(lat[k], 'p50'):.2f} ms)"))
    thr_cells = cells(sides, thr, lambda k: f"{rate[k]:,.0f} req/s")
    cpu = lambda res: ", ".join(f"{sides[k].label} {fig(r, 'cpu_us'):,.0f} µs"  # noqa: E731
                                for k, r in res.items() if not trouble(r))
    return [make_row("vs peers: non-streaming, 1 conn: added p50", "≤ best peer", sides, lat_cells,
                     ratio(p50["service"], best_peer(sides, p50.get, True)),
                     f"CPU per request: {cpu(lat)}; ratio = service ÷ best peer (added p50)"),
            make_row(f"vs peers: non-streaming, {h.s.connections} conns: req/s", "≥ best peer", sides, thr_cells,
                     ratio(rate["service"], best_peer(sides, rate.get, False)),
                     f"CPU per request: {cpu(thr)}; ratio = service ÷ best peer (req/s)")]


def log_error(side: Side) -> str:
    """The last line of a side's log that names an error (what a 500 hides), or ''."""
    if side.proc is None:
        return ""
    lines = side.proc.log_path.read_text(errors="replace").splitlines()
    hit = next((x.strip() for x in reversed(lines) if "Error" in x), "")
    return f"; its log: {hit[:160]}" if hit else ""


def streaming(sides: dict[str, Side], res: dict[str, list[dict[str, Any]]], k: int, how: str,
              first: bool) -> Row:
    ok = {key: key in res and not trouble(res[key], k) for key in sides}
    base_ok = ok["direct"]
    ttft = {key: added(res, key, "ttft_p50") if ok[key] and base_ok else NAN for key in sides}
    ttft99 = {key: added(res, key, "ttft_p99") if ok[key] and base_ok else NAN for key in sides}
    gap = {key: added(res, key, "gap_p50") if ok[key] and base_ok else NAN for key in sides}
    cpu = {key: fig(res[key], "cpu_chunk_us") if ok[key] else NAN for key in sides}

    def show(key: str) -> str:
        if key == "direct":
            return (f"TTFT p50 {fig(res[key], 'ttft_p50'):.1f} / p99 {fig(res[key], 'ttft_p99'):.1f} ms, "
                    f"gap p50 {fig(res[key], 'gap_p50'):.2f} ms, fake's CPU {cpu[key]:,.0f} µs/chunk")
        return f"TTFT {ttft[key]:+.1f} / {ttft99[key]:+.1f} ms, gap {gap[key]:+.2f} ms, {cpu[key]:,.0f} µs/chunk"
    shown = cells(sides, res, show, k)
    ratios = (f"TTFT p50 {ratio(ttft['service'], best_peer(sides, ttft.get, True))}, "
              f"CPU/chunk {ratio(cpu['service'], best_peer(sides, cpu.get, True))}")
    partial_fail = {key: trouble(res[key], k) for key in res if ok[key] is False and key in res}
    return make_row(f"vs peers: {k} stream{'s' if k > 1 else ''} × {CHUNKS} chunks {CHUNK_GAP * 1000:g} ms apart, "
                    f"{how}: added TTFT p50 / p99, added gap p50, CPU per chunk", "—", sides, shown, ratios,
                    "; ".join(([METHOD] if first else [])
                              + [f"{sides[key].label}: {t}{log_error(sides[key])}" for key, t in partial_fail.items()]))
