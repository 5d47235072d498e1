"""The fake upstreams, each in its own process: `python -m bench.fakes ollama|openai|router PORT`.

Ollama and OpenAI are the test fakes (tests/fakes) with their request log bounded; the router
answers 200 to every reply and keeps only counts and the time of the last one (time.monotonic(),
comparable across processes). Each also answers `GET /__bench/stats` and `POST /__bench/set`
(knobs of the fake LLM: {"delay": 2.0}, {"token_delay": 0.02}, {"reply": "w0 w1 …"}: one streamed
chunk per word; it answers the knobs' previous values, {"previous": {…}}).
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

SETTABLE = {"delay", "token_delay", "reply"}


class CountingRouter:
    """POST /api/v1/router/responses → 200, counted."""

    def __init__(self) -> None:
        self.calls = 0
        self.last_reply_at: float | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await read_body(receive) is None:
            return
        if scope["path"] != "/api/v1/router/responses":
            await respond(send, 404, {"success": False})
            return
        self.calls += 1
        self.last_reply_at = time.monotonic()
        await respond(send, 200, {"success": True})


class Controlled:
    """ASGI wrapper: lifespan, the /__bench control API, then the fake itself."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not await is_http(scope, receive, send):
            return
        if scope["path"] == "/__bench/set":
            changes = json.loads(await read_body(receive) or b"{}")
            if set(changes) - SETTABLE:
                await respond(send, 400, {"unknown": sorted(set(changes) - SETTABLE)})
                return
            previous = {key: getattr(self.fake, key) for key in changes}
            for key, value in changes.items():
                setattr(self.fake, key, value)
            await respond(send, 200, {"previous": previous})
            return
        if scope["path"].startswith("/__bench/"):
            await respond(send, 200, {"calls": self.fake.calls,
                                      "last_reply_at": getattr(self.fake, "last_reply_at", None)})
            return
        await self.fake(scope, receive, send)


async def respond(send: Any, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
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
            fake.release()  # let hanging or delayed calls end

    await hypercorn_serve(Controlled(fake), config, shutdown_trigger=shutdown)


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(sys.argv[1], int(sys.argv[2])))
