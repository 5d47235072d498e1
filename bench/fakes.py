"""The fake upstreams in their own process: `python -m bench.fakes KIND PORT` (KIND: ollama|openai|router).

Ollama and OpenAI reuse the test fakes (tests/fakes), with their request log bounded so a long run
does not grow memory. The router is a counting fake: it answers 200 to every reply and remembers
only counts and the time of the last reply (time.monotonic(), comparable across processes).

Every fake also answers a small control API used by the harness:
- `GET  /__bench/stats` → {"calls", "replies", "fallbacks", "last_reply_at"}
- `POST /__bench/set`   → set knobs of the fake LLM ({"delay": 2.0, "token_delay": 0.01, ...})
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sys
import time
from typing import Any

from tests.fakes.asgi import is_http, read_body
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI

SETTABLE = {"delay", "token_delay", "reply", "fail_status", "fail_times", "hang", "healthy"}


class CountingRouter:
    """POST /api/v1/router/responses → 200; counts replies (and canned fallbacks)."""

    def __init__(self) -> None:
        self.replies = 0
        self.fallbacks = 0
        self.last_reply_at: float | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        if body is None:
            return
        if scope["path"] != "/api/v1/router/responses":
            await _respond(send, 404, {"success": False})
            return
        self.replies += 1
        if b'"fallback": true' in body or b'"fallback":true' in body:
            self.fallbacks += 1
        self.last_reply_at = time.monotonic()
        await _respond(send, 200, {"success": True})

    def stats(self) -> dict[str, Any]:
        return {"calls": self.replies, "replies": self.replies, "fallbacks": self.fallbacks,
                "last_reply_at": self.last_reply_at}


class Controlled:
    """ASGI wrapper: lifespan, the /__bench control API, then the fake itself."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not await is_http(scope, receive, send):
            return
        path = scope["path"]
        if path == "/__bench/stats":
            await _respond(send, 200, self.stats())
            return
        if path == "/__bench/set":
            body = await read_body(receive)
            changes = json.loads(body or b"{}")
            bad = set(changes) - SETTABLE
            if bad:
                await _respond(send, 400, {"unknown": sorted(bad)})
                return
            for key, value in changes.items():
                setattr(self.fake, key, value)
            await _respond(send, 200, self.stats())
            return
        await self.fake(scope, receive, send)

    def stats(self) -> dict[str, Any]:
        if isinstance(self.fake, CountingRouter):
            return self.fake.stats()
        return {"calls": self.fake.calls, "replies": 0, "fallbacks": 0, "last_reply_at": None,
                "delay": self.fake.delay, "token_delay": self.fake.token_delay}


async def _respond(send: Any, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def build(kind: str) -> Any:
    if kind == "router":
        return CountingRouter()
    fake = {"ollama": FakeOllama, "openai": FakeOpenAI}[kind]()
    fake.requests = collections.deque(maxlen=32)  # the test fakes log every request: bound it
    if kind == "openai":
        fake.models = ["gpt-4o-mini", "llama3.2", "auto"]
    return fake


async def serve(kind: str, port: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    config.keep_alive_timeout = 75
    config.backlog = 2048
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fake = build(kind)

    async def shutdown() -> None:
        await stop.wait()
        if hasattr(fake, "release"):
            fake.release()

    await hypercorn_serve(Controlled(fake), config, shutdown_trigger=shutdown)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    import uvloop

    uvloop.run(serve(kind, port))


if __name__ == "__main__":
    main()
