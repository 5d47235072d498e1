"""The bench's own small HTTP/1.1 driver, for what wrk cannot do — read an SSE stream (time to the
first token), send an exact number of requests — and the stand-in for wrk where it is not installed.

`python -m bench.driver '<json spec>'` prints one JSON line with the keys bench/load.py's wrk runner
gives. Closed loop like wrk: `connections` keep-alive connections, each sending its next request when
the answer is in (after `delay_ms`, if given), for `duration` seconds or until `count` are sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any, Callable

from bench import payloads

perf = time.perf_counter
COUNT_LIMIT_S = 900.0  # a count run ends after this long whatever is left


def request_maker(spec: dict[str, Any]) -> Callable[[int], bytes]:
    head = (f"POST {spec['path']} HTTP/1.1\r\nHost: 127.0.0.1:{spec['port']}\r\nContent-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in (spec.get("headers") or {}).items()))
    if spec["kind"] == "openai":
        body = payloads.openai_body(bool(spec.get("stream")))
        fixed = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        return lambda n: fixed

    def make(n: int) -> bytes:
        body = payloads.interaction_body(spec["run"], n + spec.get("offset", 0), spec.get("trigger", False),
                                         spec.get("users", 10_000), spec.get("channels", 500))
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    return make


def has_token(event: bytes) -> bool:
    """An SSE event carrying a non-empty delta.content."""
    if not event.startswith(b"data: {"):
        return False
    choices = json.loads(event[6:]).get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


async def read_answer(reader: asyncio.StreamReader, sse: bool) -> tuple[int, float | None, bool]:
    """(status, perf time of the first token or None, connection reusable)."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status, first = int(head[9:12]), None
    keep = b"\r\nconnection: close" not in head
    if b"\r\ntransfer-encoding: chunked" not in head:
        at = head.find(b"\r\ncontent-length:")
        await reader.readexactly(int(head[at + 17:head.index(b"\r\n", at + 2)]) if at >= 0 else 0)
        return status, first, keep
    events = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, first, keep
        data = (await reader.readexactly(size + 2))[:-2]
        if sse and first is None:
            *done, events = (events + data).split(b"\n\n")
            if any(has_token(event) for event in done):
                first = perf()


def percentile(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3) if values else None


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    make, sse, count = request_maker(spec), bool(spec.get("stream")), spec.get("count")
    delay = float(spec.get("delay_ms", 0)) / 1000
    numbers = itertools.count()
    latencies: list[float] = []
    ttfts: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    started = perf()
    end = started + (COUNT_LIMIT_S if count is not None else float(spec["duration"]))

    async def connection() -> None:
        nonlocal errors
        writer = None
        while perf() < end:
            n = next(numbers)
            if count is not None and n >= count:
                break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
                sent = perf()
                writer.write(make(n))
                status, first, keep = await asyncio.wait_for(read_answer(reader, sse), 10)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                writer = None
                continue
            done = perf()
            if done <= end:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(done - sent)
                if first is not None:
                    ttfts.append(first - sent)
            if not keep:
                writer.close()
                writer = None
            if delay:
                await asyncio.sleep(delay)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(int(spec["connections"]))))
    elapsed = min(perf(), end) - started
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {"duration": round(elapsed, 3), "ok": ok, "rps": round(ok / elapsed, 1) if elapsed else 0.0,
            "non2xx": {str(k): v for k, v in sorted(statuses.items()) if not 200 <= k < 300}, "errors": errors,
            "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "ttft_p50": percentile(ttfts, 0.50)}


STREAM_LIMIT_S = 120.0  # one stream is given up after this long


async def read_events(reader: asyncio.StreamReader, head: bytes) -> Any:
    """The body's SSE events as they arrive: chunked, or (without it) until the connection closes."""
    chunked = b"\r\ntransfer-encoding: chunked" in head.lower()
    buffer = b""
    while True:
        if chunked:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return
            data = (await reader.readexactly(size + 2))[:-2]
        else:
            data = await reader.read(65536)
            if not data:
                return
        *done, buffer = (buffer + data).split(b"\n\n")
        for event in done:
            yield event


async def one_stream(spec: dict[str, Any], at: float) -> dict[str, Any]:
    """One streamed completion on its own connection, sent at perf time `at`: the perf times of its
    token events, from the send."""
    await asyncio.sleep(max(0.0, at - perf()))
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        sent = perf()
        writer.write(request_maker({**spec, "stream": True})(0))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        if status != 200:
            body = await asyncio.wait_for(reader.read(300), 5)
            return {"error": f"{status} {body[:120].decode(errors='replace')}".strip()}
        times = []
        async for event in read_events(reader, head):
            if has_token(event):
                times.append(perf() - sent)
        return {"times": times} if times else {"error": "200 without a token event"}
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:160]}
    finally:
        if writer is not None:
            writer.close()


async def streams(spec: dict[str, Any]) -> dict[str, Any]:
    """`streams` concurrent streams, the i-th sent at i × spread ÷ streams seconds (spread 0: all at
    once): time to the first token event (p50, p99), gap between token events (p50, p99), token events."""
    n, spread = int(spec["streams"]), float(spec.get("spread", 0))
    start = perf() + 0.05
    tasks = [asyncio.wait_for(one_stream(spec, start + i * spread / n), STREAM_LIMIT_S) for i in range(n)]
    got = await asyncio.gather(*tasks, return_exceptions=True)
    done = [g for g in got if isinstance(g, dict) and "times" in g]
    errors = [g["error"] if isinstance(g, dict) else f"{type(g).__name__} after {STREAM_LIMIT_S:g} s"
              for g in got if not (isinstance(g, dict) and "times" in g)]
    ttfts = [g["times"][0] for g in done]
    gaps = [b - a for g in done for a, b in zip(g["times"], g["times"][1:])]
    return {"ok": len(done), "failed": len(errors), "error": errors[0] if errors else None,
            "chunks": sum(len(g["times"]) for g in done),
            "ttft_p50": percentile(ttfts, 0.50), "ttft_p99": percentile(ttfts, 0.99),
            "gap_p50": percentile(gaps, 0.50), "gap_p99": percentile(gaps, 0.99)}


if __name__ == "__main__":
    import uvloop

    spec = json.loads(sys.argv[1])
    print(json.dumps(uvloop.run(streams(spec) if spec.get("streams") else drive(spec))))
