"""The bare app the ACK is measured against: Quart under the same server as the service. Its handler
reads the body, parses the same JSON and answers 202 with a body of the service's shape (one
module-level encoder, no jsonify); no validation, queue, hooks, metrics or logs.

Its `POST /v1/chat/completions` is the floor of a streamed relay under the same server (the
`floors` rows): it reads and parses the body, then streams the bench's answer (STREAM_CHUNKS chunks
STREAM_GAP_S apart, from a timer, no upstream) as SSE chunks of the service's shape, then the final
chunk and [DONE].

    python -m bench.baseline_app PORT                  # Hypercorn on uvloop, as `python app.py`
    uvicorn bench.baseline_app:app --port PORT         # as `uvicorn --factory app:create_app`
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid

from quart import Quart, Response, request

from bench.payloads import STREAM_CHUNKS, STREAM_GAP_S

app = Quart(__name__)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@app.post("/api/v1/ai/interaction")
async def interaction():  # type: ignore[no-untyped-def]
    data = json.loads(await request.get_data(cache=False))
    now = time.time()
    body = {"success": True,
            "data": {"message": "Processing request", "session_id": data["session_id"],
                     "interaction_id": str(uuid.uuid4()), "duplicate": False},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)}
    return Response(_encode(body), status=202, content_type="application/json")


CHUNK_HEAD = (b'data: {"id":"chatcmpl-bare","object":"chat.completion.chunk","created":0,"model":"bare",'
              b'"system_fingerprint":null,"choices":[')


@app.post("/v1/chat/completions")
async def streamed_completion():  # type: ignore[no-untyped-def]
    json.loads(await request.get_data(cache=False))

    async def events():  # type: ignore[no-untyped-def]
        yield CHUNK_HEAD + b'{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
        for i in range(STREAM_CHUNKS):
            await asyncio.sleep(STREAM_GAP_S)
            choice = {"index": 0, "delta": {"content": f"w{i} "}, "logprobs": None, "finish_reason": None}
            yield CHUNK_HEAD + _encode(choice).encode() + b"]}\n\n"
        yield CHUNK_HEAD + b'{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    response = Response(events(), content_type="text/event-stream; charset=utf-8")
    response.timeout = None
    return response


@app.get("/health")
async def health():  # type: ignore[no-untyped-def]
    return Response(_encode({"status": "healthy"}), content_type="application/json")


async def serve(port: int) -> None:
    """As app.py's serve(): Hypercorn's defaults, no access log, stopped by SIGTERM."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
