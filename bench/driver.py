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


if __name__ == "__main__":
    import uvloop

    print(json.dumps(uvloop.run(drive(json.loads(sys.argv[1])))))
