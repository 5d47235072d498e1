"""The `floors` rows: what the service's OpenAI-compatible relay cannot cost less than, measured in
the same run, so a gap to the peers can be read as the part that is ours and the part that is the
framework's or the upstream client's:

1. CPU per non-streamed completion at 1 connection: the service (its process, /proc) beside the bare
   Quart app answering a small JSON request under the same server (the framework's floor per
   request), and the upstream client alone in a process of its own (bench/clients.py): the openai
   SDK as the service calls it, its typed `create()`, and plain aiohttp;
2. CPU per relayed token chunk, 100 streams × 100 chunks 20 ms apart started over 2 s: the service
   beside the bare Quart app streaming the same chunks from a timer (the framework's floor per
   chunk written), and each client reading the same streams from the fake (the floor per chunk read).
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from typing import Any

from bench import payloads
from bench.load import streamed
from bench.procs import PYTHON, ROOT, Proc, clean_env
from bench.rows import AUTH, OPENAI_ENV, OPENAI_PATH, Harness, Row, med

STREAMS, SPREAD_S = 100, payloads.STREAM_CHUNKS * payloads.STREAM_GAP_S
CLIENTS = {"sdk": "openai SDK as the service calls it (with_raw_response)", "sdk-typed": "openai SDK typed create()",
           "aiohttp": "aiohttp ClientSession"}


def run_clients(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([PYTHON, "-m", "bench.clients", json.dumps(spec)], capture_output=True, text=True,
                         cwd=ROOT, env=clean_env(PYTHONPATH=ROOT), timeout=300)
    if out.returncode:
        raise RuntimeError(f"bench.clients failed: {out.stderr[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def all_streamed(proc: Proc, spec: dict[str, Any]) -> dict[str, Any]:
    res = streamed(proc, spec)
    if res["failed"]:
        raise RuntimeError(f"{res['failed']} streams failed: {res['error']}")
    return res


def cpu(results: list[dict[str, Any]], key: str = "cpu_us") -> float:
    """The median over rounds of a side's CPU per call (`cpu_us`) or per chunk (`cpu_chunk_us`)."""
    return med([r[key] for r in results])


def floors(h: Harness) -> list[Row]:
    svcs, failed = h.services("floors", **{**OPENAI_ENV, "MAX_CONCURRENT_REQUESTS": 256})
    h.procs.stop(*(p for v, p in svcs.items() if v != "new"))  # --against: the floors describe HEAD only
    service = svcs.get("new")
    if service is None:
        why = failed.get("new", "could not start")
        return [Row("floors", "floors: CPU per non-streamed completion", "—", notes=why),
                Row("floors", "floors: CPU per relayed chunk", "—", notes=why)]
    fake, bare = h.fake("openai"), h.bare()
    count = max(50, int(200 * h.s.duration))
    base = {"kind": "openai", "path": OPENAI_PATH, "headers": AUTH}
    try:
        calls = h.rounds({"service": partial(h.load, service, {**base, "connections": 1}),
                          "bare": partial(h.load, bare, {"kind": "interaction", "connections": 1}),
                          **{c: partial(run_clients, {"url": fake.url, "client": c, "mode": "call", "count": count})
                             for c in CLIENTS}}, "floors calls")
        streams = 2 if h.s.rounds == 1 and h.s.duration < 1 else STREAMS  # --smoke: tiny
        spec = {**base, "stream": True, "streams": streams, "spread": SPREAD_S, "duration": 120}
        client = {"url": fake.url, "mode": "stream", "streams": streams, "spread": SPREAD_S}
        with h.streamed_answers():
            chunks = h.rounds({"service": partial(all_streamed, service, spec),
                               "bare": partial(all_streamed, bare, spec),
                               **{c: partial(run_clients, {**client, "client": c}) for c in ("sdk", "aiohttp")}},
                              "floors chunks")
    finally:
        h.procs.stop(service)
    server = h.s.server
    call_cpu = {side: cpu(results) for side, results in calls.items()}
    call_floor = call_cpu["bare"] + call_cpu["sdk"]
    chunk_cpu = {side: cpu(results, "cpu_chunk_us") for side, results in chunks.items()}
    chunk_floor = chunk_cpu["bare"] + chunk_cpu["sdk"]
    return [
        Row("floors", "floors: CPU per non-streamed completion, 1 conn",
            f"bare Quart app under {server}, a small JSON request: {call_cpu['bare']:,.0f} µs; "
            + "; ".join(f"{label}: {call_cpu[c]:,.0f} µs per call" for c, label in CLIENTS.items()),
            cells={"new": f"{call_cpu['service']:,.0f} µs per request"},
            ratios={"new": f"{call_cpu['service'] / call_floor:.2f}× (bare app + SDK)"},
            notes="service and bare app: their process's CPU (/proc) ÷ 2xx answers under wrk; clients: "
                  f"CPU of a process of their own (bench/clients.py) over {count} calls to the fake"),
        Row("floors", f"floors: CPU per relayed chunk, {streams} streams × {payloads.STREAM_CHUNKS} chunks "
            f"{payloads.STREAM_GAP_S * 1000:g} ms apart, spread over {SPREAD_S:g} s",
            f"bare Quart app under {server}, chunks from a timer: {chunk_cpu['bare']:,.0f} µs written; "
            f"{CLIENTS['sdk']}: {chunk_cpu['sdk']:,.0f} µs read; aiohttp: {chunk_cpu['aiohttp']:,.0f} µs read",
            cells={"new": f"{chunk_cpu['service']:,.0f} µs per chunk"},
            ratios={"new": f"{chunk_cpu['service'] / chunk_floor:.2f}× (bare app + SDK)"},
            notes="per token chunk (one carrying delta.content); the service reads each chunk with the SDK and "
                  "writes it under the server, so its floor is the bare app's write plus the SDK's read"),
    ]
