"""Our own HTTP/1.1 load generator: asyncio (uvloop) protocols, keep-alive, pre-encoded requests.

Run as a separate process (`python -m bench.loadgen '<json spec>'`) so it never shares a core's
event loop with the service; prints one JSON object with counts per status, errors, latency
percentiles (ms), its own CPU time, and — for streams — time to first token.

Modes (spec["mode"]):
- "closed": `connections` loops, each sends the next request as soon as the previous answer is in
  (like wrk). Either `duration` seconds after `warmup`, or exactly `count` requests.
- "rate": open loop at `rate` requests/s from a pool of `connections` keep-alive connections.
  Latency is measured from the *scheduled* send time, so a stalled server (or a late generator)
  shows up in the percentiles instead of silently lowering the rate (no coordinated omission);
  `lag_ms` reports how late the generator itself was.
Options: `ttft` (parse the SSE stream, time to the first non-empty `delta.content`),
`pace` = {"path": status path, "max_pending": K} (closed/count mode: hold sending while the
service reports queue_depth + inflight > K, so a backlog never builds up).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import sys
import time
from typing import Any, Callable

from bench import payloads

perf = time.perf_counter


class ConnectionLost(Exception):
    pass


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection; one request at a time."""

    def __init__(self, sse: bool = False, keep_body: bool = False) -> None:
        self.sse = sse
        self.keep_body = keep_body
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, float | None, bytes]] | None = None
        self.state = 0
        self.remaining = 0
        self.status = 0
        self.keepalive = True
        self.body = bytearray()
        self.sse_buf = bytearray()
        self.first_token: float | None = None
        self.closed = False
        self.target = 0

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionLost(repr(exc)))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._parse()
        except Exception as exc:  # malformed answer: fail this request, drop the connection
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            if self.transport:
                self.transport.close()

    # --- requests --------------------------------------------------------------------------
    def send(self, payload: bytes) -> asyncio.Future[tuple[int, float | None, bytes]]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.state, self.first_token = 0, None
        self.body.clear()
        self.sse_buf.clear()
        self.transport.write(payload)
        return self.waiter

    def close(self) -> None:
        if self.transport and not self.closed:
            self.transport.close()

    # --- parsing ---------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buf
        while self.waiter is not None and not self.waiter.done():
            if self.state == 0:  # status line and headers
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                del buf[:end + 4]
                self.status = int(head[9:12])
                self.keepalive = b"\r\nconnection: close" not in head
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    self.remaining = int(head[at + 17: stop if stop >= 0 else len(head)])
                    self.state = 1
                elif b"\r\ntransfer-encoding: chunked" in head:
                    self.state = 2
                else:
                    self.remaining, self.state = 0, 1
            elif self.state == 1:  # body of known length
                if len(buf) < self.remaining:
                    return
                self._body(bytes(buf[:self.remaining]))
                del buf[:self.remaining]
                self._finish()
            elif self.state == 2:  # chunk size line
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[:end + 2]
                if size == 0:
                    self.state = 4
                else:
                    self.remaining, self.state = size, 3
            elif self.state == 3:  # chunk data + CRLF
                if len(buf) < self.remaining + 2:
                    return
                self._body(bytes(buf[:self.remaining]))
                del buf[:self.remaining + 2]
                self.state = 2
            else:  # trailers, ended by an empty line
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                empty = end == 0
                del buf[:end + 2]
                if empty:
                    self._finish()

    def _body(self, data: bytes) -> None:
        if self.keep_body:
            self.body += data
        if self.sse and self.first_token is None:
            self.sse_buf += data
            while True:
                end = self.sse_buf.find(b"\n\n")
                if end < 0:
                    break
                event = bytes(self.sse_buf[:end])
                del self.sse_buf[:end + 2]
                if event.startswith(b"data: ") and event != b"data: [DONE]":
                    try:
                        choices = json.loads(event[6:]).get("choices") or []
                    except ValueError:
                        continue
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        self.first_token = perf()
                        self.sse_buf.clear()
                        break

    def _finish(self) -> None:
        self.state = 0
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, self.first_token, bytes(self.body)))


# --- request factories ------------------------------------------------------------------------
def request_factory(spec: dict[str, Any]) -> Callable[[int], bytes]:
    req = spec["request"]
    host = f"{spec['host']}:{spec['port']}"
    method = req.get("method", "POST")
    headers = "".join(f"{k}: {v}\r\n" for k, v in (req.get("headers") or {}).items())
    head = f"{method} {req['path']} HTTP/1.1\r\nHost: {host}\r\n{headers}"
    kind = req["kind"]
    if kind == "interaction":
        run = req["run"]
        trigger, users, channels = req.get("trigger", False), req.get("users", 10_000), req.get("channels", 500)
        offset = int(req.get("offset", 0))
        prefix = (head + "Content-Type: application/json\r\nContent-Length: ").encode()

        def make(n: int) -> bytes:
            body = payloads.interaction_body(run, n + offset, trigger=trigger, users=users, channels=channels)
            return prefix + str(len(body)).encode() + b"\r\n\r\n" + body
        return make
    if kind == "openai":
        body = payloads.openai_body(bool(req.get("stream")))
        fixed = (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        return lambda n: fixed
    if kind == "get":
        fixed = (head + "\r\n").encode()
        return lambda n: fixed
    raise ValueError(f"unknown request kind {kind!r}")


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    values = sorted(values)
    count = len(values)

    def at(q: float) -> float:
        return round(values[min(count - 1, max(0, int(q * count + 0.5) - 1))] * 1000, 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(values[-1] * 1000, 3), "mean": round(sum(values) / count * 1000, 3)}


class Recorder:
    def __init__(self) -> None:
        self.recording = False
        self.latencies: list[float] = []
        self.ttfts: list[float] = []
        self.lags: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.completed = 0

    def ok(self, status: int, latency: float, ttft: float | None, record: bool | None = None) -> None:
        if not (self.recording if record is None else record):
            return
        self.completed += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)
        if ttft is not None:
            self.ttfts.append(ttft)

    def error(self, kind: str, record: bool | None = None) -> None:
        if self.recording if record is None else record:
            self.errors[kind] = self.errors.get(kind, 0) + 1


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host, self.port = spec["host"], int(spec["port"])
        # rate mode may alternate between several targets, request by request (n % len(targets))
        self.targets = [(h, int(p)) for h, p in spec.get("targets") or [(self.host, self.port)]]
        self.make = request_factory(spec)
        self.sse = bool(spec.get("ttft"))
        self.timeout = float(spec.get("timeout", 10))
        self.recs = [Recorder() for _ in self.targets]
        self.rec = self.recs[0]
        self.stop = False
        self.counter = itertools.count()
        self.gate = asyncio.Event()
        self.gate.set()
        self.t_start = self.t_end = 0.0

    async def connect(self, keep_body: bool = False, target: int = 0) -> HttpConn:
        loop = asyncio.get_running_loop()
        host, port = self.targets[target]
        _, conn = await loop.create_connection(lambda: HttpConn(self.sse, keep_body), host, port)
        conn.target = target
        return conn

    async def one(self, conn: HttpConn, n: int, started: float | None = None,
                  record: bool | None = None) -> HttpConn:
        """Send request n on conn (reconnecting when needed); returns the usable connection."""
        rec = self.recs[conn.target]
        if conn.closed:
            conn = await self.connect(target=conn.target)
        sent = perf()
        t0 = sent if started is None else started
        future = conn.send(self.make(n))
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, future)
        try:
            status, first_token, _ = await future
        except asyncio.TimeoutError:
            rec.error("timeout", record)
            conn.close()
            return await self.connect(target=conn.target)
        except (ConnectionLost, OSError, ValueError) as exc:
            rec.error("connection" if not isinstance(exc, ValueError) else "parse", record)
            conn.close()
            return await self.connect(target=conn.target)
        finally:
            timer.cancel()
        done = perf()
        rec.ok(status, done - t0, None if first_token is None else first_token - sent, record)
        if not conn.keepalive:
            conn.close()
            conn = await self.connect(target=conn.target)
        return conn

    # --- closed loop ------------------------------------------------------------------------
    async def closed_worker(self, count: int | None) -> None:
        conn = await self.connect()
        try:
            while not self.stop:
                if not self.gate.is_set():
                    await self.gate.wait()
                n = next(self.counter)
                if count is not None and n >= count:
                    return
                conn = await self.one(conn, n)
        finally:
            conn.close()

    async def pace(self, path: str, max_pending: int) -> None:
        conn = await self.connect(keep_body=True)
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        while not self.stop:
            _, _, body = await conn.send(request)
            data = json.loads(body)["data"]
            if data["queue_depth"] + data["inflight"] > max_pending:
                self.gate.clear()
            else:
                self.gate.set()
            await asyncio.sleep(0.02)
        conn.close()

    async def run_closed(self) -> float:
        spec = self.spec
        count = spec.get("count")
        pacer = None
        if spec.get("pace"):
            pacer = asyncio.ensure_future(self.pace(spec["pace"]["path"], int(spec["pace"]["max_pending"])))
        workers = [asyncio.ensure_future(self.closed_worker(count)) for _ in range(int(spec["connections"]))]
        try:
            if count is not None:
                self.rec.recording = True
                started = perf()
                self.t_start = time.monotonic()
                await asyncio.gather(*workers)
                self.t_end = time.monotonic()
                return perf() - started
            await asyncio.sleep(float(spec.get("warmup", 0)))
            self.rec.recording = True
            started = perf()
            self.t_start = time.monotonic()
            await asyncio.sleep(float(spec["duration"]))
            self.rec.recording = False
            self.t_end = time.monotonic()
            elapsed = perf() - started
            self.stop = True
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            return elapsed
        finally:
            self.stop = True
            if pacer:
                pacer.cancel()
                await asyncio.gather(pacer, return_exceptions=True)

    # --- open loop ----------------------------------------------------------------------------
    async def run_rate(self) -> float:
        spec = self.spec
        rate, duration, warmup = float(spec["rate"]), float(spec["duration"]), float(spec.get("warmup", 0))
        pools: list[asyncio.Queue[HttpConn]] = []
        for target in range(len(self.targets)):
            pool: asyncio.Queue[HttpConn] = asyncio.Queue()
            for conn in await asyncio.gather(*(self.connect(target=target)
                                               for _ in range(int(spec["connections"])))):
                pool.put_nowait(conn)
            pools.append(pool)
        tasks: set[asyncio.Task[None]] = set()

        async def fire(conn: HttpConn, n: int, scheduled: float, record: bool) -> None:
            try:
                conn = await self.one(conn, n, started=scheduled, record=record)
            finally:
                pools[conn.target].put_nowait(conn)

        interval = 1.0 / rate
        start = perf() + 0.05
        measure_from, end = start + warmup, start + warmup + duration
        self.t_start = time.monotonic() + 0.05 + warmup
        self.t_end = self.t_start + duration
        for n in itertools.count():
            scheduled = start + n * interval
            if scheduled >= end:
                break
            delay = scheduled - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            target = n % len(pools)
            conn = await pools[target].get()
            record = scheduled >= measure_from
            if record:
                self.recs[target].lags.append(perf() - scheduled)
            task = asyncio.ensure_future(fire(conn, n, scheduled, record))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout)
        for pool in pools:
            while not pool.empty():
                pool.get_nowait().close()
        return duration

    async def run(self) -> dict[str, Any]:
        elapsed = await (self.run_rate() if self.spec["mode"] == "rate" else self.run_closed())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        results = [self._result(rec, elapsed) for rec in self.recs]
        out = dict(results[0])
        if len(results) > 1:
            out["targets"] = results
        out.update(cpu_s=round(usage.ru_utime + usage.ru_stime, 3), t_start=self.t_start, t_end=self.t_end)
        return out

    @staticmethod
    def _result(rec: Recorder, elapsed: float) -> dict[str, Any]:
        ok = sum(v for k, v in rec.statuses.items() if 200 <= k < 300)
        return {
            "generator": "python", "duration": round(elapsed, 4), "completed": rec.completed,
            "ok": ok, "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
            "statuses": {str(k): v for k, v in sorted(rec.statuses.items())},
            "non_2xx": rec.completed - ok, "errors": rec.errors,
            "latency_ms": percentiles(rec.latencies), "ttft_ms": percentiles(rec.ttfts),
            "lag_ms": percentiles(rec.lags),
        }


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop
        result = uvloop.run(Generator(spec).run())
    except ImportError:
        result = asyncio.run(Generator(spec).run())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
