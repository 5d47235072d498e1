"""The baselines: a bare Quart app under the same Hypercorn/uvloop setup as `python app.py`.

`python -m bench.baseline_app PORT [OPENAI_UPSTREAM]` serves

- `POST /api/v1/ai/interaction` (the ACK baseline): read the body, parse the same JSON, answer 202
  with a body of the same shape as the service's, encoded the cheap way (one module-level JSON
  encoder into a Response, no `jsonify`). No validation, no queue, no hooks, no metrics: the floor
  that Quart + Hypercorn + uvloop put under any handler.
- `POST /v1/chat/completions` (the OpenAI floor, when OPENAI_UPSTREAM is given): parse the JSON body
  and send it upstream with the service's own provider call — the `openai` SDK's `client.post` on the
  same aiohttp transport — then hand the upstream's bytes back unread (a stream relayed as it comes).
  No auth, validation, routing, breaker, limits, metrics or logs: what any Quart proxy built on this
  SDK costs, so that the service's own share of the added latency can be told apart.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid

from quart import Quart, Response, request

app = Quart(__name__)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_openai: dict[str, object] = {}  # "client", "url" once started with an upstream


@app.post("/api/v1/ai/interaction")
async def interaction():  # type: ignore[no-untyped-def]
    data = json.loads(await request.get_data(cache=False))
    now = time.time()
    body = {"success": True,
            "data": {"message": "Processing request", "session_id": data["session_id"],
                     "interaction_id": str(uuid.uuid4()), "duplicate": False},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)}
    return Response(_encode(body), status=202, content_type="application/json")


@app.post("/v1/chat/completions")
async def chat_completions():  # type: ignore[no-untyped-def]
    import httpx2

    if not _openai:
        return Response(_encode({"error": "no upstream"}), status=404, content_type="application/json")
    client, url = _openai["client"], _openai["url"]
    body = json.loads(await request.get_data(cache=False))
    if not body.get("stream"):
        answer = await client.post(url, body=body, cast_to=httpx2.Response)  # type: ignore[attr-defined]
        return Response(answer.content, status=answer.status_code, content_type="application/json")
    answer = await client.post(url, body=body, cast_to=httpx2.Response, stream=True)  # type: ignore[attr-defined]

    async def relay():  # type: ignore[no-untyped-def]
        try:
            async for chunk in answer.aiter_bytes():
                yield chunk
        finally:
            await answer.aclose()

    response = Response(relay(), status=answer.status_code, content_type="text/event-stream")
    response.timeout = None
    return response


@app.before_serving
async def _open_upstream() -> None:
    if len(sys.argv) > 2:
        import openai

        from services.aiohttp_transport import AiohttpTransport2

        root = sys.argv[2].rstrip("/")
        http_client = openai.DefaultAsyncHttpxClient(transport=AiohttpTransport2(limits=openai.DEFAULT_CONNECTION_LIMITS))
        _openai["client"] = openai.AsyncOpenAI(base_url=root + "/v1", api_key="bench-upstream-key", max_retries=0,
                                               http_client=http_client)
        _openai["url"] = root + "/v1/chat/completions"


@app.after_serving
async def _close_upstream() -> None:
    if _openai:
        await _openai["client"].close()  # type: ignore[attr-defined]


@app.get("/health")
async def health():  # type: ignore[no-untyped-def]
    return Response(_encode({"status": "healthy"}), content_type="application/json")


async def serve(port: int, asgi: object = app) -> None:
    """Serve `asgi` (this module's app unless given) as `python app.py` serves the service."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()  # as app.py's serve(): defaults, no access log
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(asgi, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main() -> None:
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
