"""The ACK baseline: a bare Quart app under the same Hypercorn/uvloop setup as `python app.py`.

`python -m bench.baseline_app PORT` serves `POST /api/v1/ai/interaction`: read the body, parse the
same JSON, answer 202 with a body of the same shape as the service's, encoded the cheap way (one
module-level JSON encoder into a Response, no `jsonify`). No validation, no queue, no hooks, no
metrics: the floor that Quart + Hypercorn + uvloop put under any handler.
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


@app.post("/api/v1/ai/interaction")
async def interaction():  # type: ignore[no-untyped-def]
    data = json.loads(await request.get_data(cache=False))
    now = time.time()
    body = {"success": True,
            "data": {"message": "Processing request", "session_id": data["session_id"],
                     "interaction_id": str(uuid.uuid4()), "duplicate": False},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)}
    return Response(_encode(body), status=202, content_type="application/json")


@app.get("/health")
async def health():  # type: ignore[no-untyped-def]
    return Response(_encode({"status": "healthy"}), content_type="application/json")


async def serve(port: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()  # as app.py's serve(): defaults, no access log
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)


def main() -> None:
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
