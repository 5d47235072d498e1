"""The OpenAI floor proxies without the SDK, to split the floor into the server stack and the client.

`python -m bench.proxy_floors PORT UPSTREAM asgi|quart` serves `POST /v1/chat/completions` by sending
the body to UPSTREAM's `/v1/chat/completions` with one long-lived `aiohttp.ClientSession` (the client
under the service's transport, services/aiohttp_transport.py, configured alike) and handing the
upstream's bytes back unread; a stream (`"stream": true` in the body) is relayed as it comes.

- `asgi`: a raw ASGI callable, no framework, under the same Hypercorn/uvloop setup as `python app.py`:
  what Hypercorn and one aiohttp call cost by themselves;
- `quart`: a bare Quart app with one view doing the same: the above plus Quart's request handling.

With the SDK floor of bench/baseline_app.py (bare Quart + the `openai` SDK call) these make a ladder
from the fake provider to the service: Hypercorn + aiohttp → + Quart → + the SDK → + the service's
own work. Each rung is measured rotated with the others in the `openai_latency` and `openai_ttft`
benchmarks.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import aiohttp
from quart import Quart, Response, request

UPSTREAM_KEY = "bench-upstream-key"  # what the service and the SDK floor send to the fake provider
_session: dict[str, Any] = {}  # "session", "url" once started


async def _open(upstream: str) -> None:
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=0)
    _session["session"] = aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"})
    _session["url"] = upstream.rstrip("/") + "/v1/chat/completions"


async def _close() -> None:
    if _session:
        await _session["session"].close()


async def _post(body: bytes) -> aiohttp.ClientResponse:
    """The upstream answer, its head read; `read()` or `release()` gives the connection back."""
    return await _session["session"].post(_session["url"], data=body)


class RawProxy:
    """ASGI, no framework: lifespan, /health, and the relay."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/health":
            await _send_whole(send, 200, b"application/json", b'{"status":"healthy"}')
            return
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await _send_whole(send, 404, b"application/json", b'{"error":"not found"}')
            return
        stream = bool(json.loads(body).get("stream"))
        answer = await _post(body)
        ctype = answer.headers.get("Content-Type", "application/json").encode()
        if not stream:
            await _send_whole(send, answer.status, ctype, await answer.read())
            return
        try:
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(b"content-type", ctype)]})
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            answer.release()

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await _open(self.upstream)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_whole(send: Any, status: int, ctype: bytes, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def quart_proxy(upstream: str) -> Quart:
    app = Quart(__name__)

    @app.before_serving
    async def _start() -> None:
        await _open(upstream)

    @app.after_serving
    async def _stop() -> None:
        await _close()

    @app.get("/health")
    async def health():  # type: ignore[no-untyped-def]
        return Response(b'{"status":"healthy"}', content_type="application/json")

    @app.post("/v1/chat/completions")
    async def chat_completions():  # type: ignore[no-untyped-def]
        body = await request.get_data(cache=False)
        stream = bool(json.loads(body).get("stream"))
        answer = await _post(body)
        ctype = answer.headers.get("Content-Type", "application/json")
        if not stream:
            return Response(await answer.read(), status=answer.status, content_type=ctype)

        async def relay():  # type: ignore[no-untyped-def]
            try:
                async for chunk in answer.content.iter_any():
                    yield chunk
            finally:
                answer.release()

        response = Response(relay(), status=answer.status, content_type=ctype)
        response.timeout = None
        return response

    return app


def main() -> None:
    import uvloop

    from bench.baseline_app import serve

    port, upstream, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    asgi = RawProxy(upstream) if kind == "asgi" else quart_proxy(upstream)
    uvloop.run(serve(port, asgi))


if __name__ == "__main__":
    main()
