"""The upstream client's own cost, measured in a process of its own: CPU time (os.times) per call or
per streamed chunk of the client the service uses, and of the plainest Python client, both against
the bench's fake OpenAI upstream.

    python -m bench.clients '{"url": "http://127.0.0.1:PORT", "client": "sdk", "mode": "call", "count": 500}'
    python -m bench.clients '{"url": …, "client": "aiohttp", "mode": "stream", "streams": 100, "spread": 2.0}'

Clients:
- `sdk`: the openai SDK as llm/waddleai.py calls it (`chat.completions.with_raw_response.create()`
  on `DefaultAioHttpClient`, the answer `parse(to=dict)`, a stream `parse(to=AsyncStream[object])`);
- `sdk-typed`: the same call answered as the SDK's typed `ChatCompletion` (calls only);
- `aiohttp`: one `aiohttp.ClientSession` posting the same JSON, the answer `json()`, a stream read
  line by line with each `data:` line parsed.
Prints one JSON line: {"cpu_us": per call, "calls": n} or {"cpu_chunk_us": per token chunk (one
carrying delta.content, as the driver counts them), "chunks": n}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, Awaitable, Callable

import aiohttp
import openai

from bench import payloads

WARMUP_CALLS = 30


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# The bench's request, parsed once: each client is timed on its call, not on building the request
CALL = json.loads(payloads.openai_body(False))
STREAM = {**json.loads(payloads.openai_body(True)), "stream_options": {"include_usage": True}}


def has_token(chunk: Any) -> bool:
    """A chunk carrying delta.content: what the bench counts as a relayed chunk everywhere."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


class Clients:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench-upstream-key", max_retries=0,
                                      http_client=openai.DefaultAioHttpClient())
        self.session = aiohttp.ClientSession(headers={"Authorization": "Bearer bench-upstream-key"})

    async def close(self) -> None:
        await self.sdk.close()
        await self.session.close()

    async def call(self, client: str) -> int:
        if client == "aiohttp":
            async with self.session.post(f"{self.url}/v1/chat/completions", json=CALL) as resp:
                resp.raise_for_status()
                await resp.json()
        elif client == "sdk-typed":
            await self.sdk.chat.completions.create(**CALL)
        else:
            raw = await self.sdk.chat.completions.with_raw_response.create(**CALL)
            raw.parse(to=dict)
        return 1

    async def stream(self, client: str) -> int:
        chunks = 0
        if client == "aiohttp":
            async with self.session.post(f"{self.url}/v1/chat/completions",
                                         json=STREAM) as resp:
                resp.raise_for_status()
                async for line in resp.content:
                    if line.startswith(b"data: {"):
                        chunks += has_token(json.loads(line[6:]))
            return chunks
        raw = await self.sdk.chat.completions.with_raw_response.create(**STREAM)
        async for chunk in raw.parse(to=openai.AsyncStream[object]):
            chunks += has_token(chunk)
        return chunks


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    clients = Clients(spec["url"])
    try:
        if spec["mode"] == "call":
            one: Callable[[], Awaitable[int]] = lambda: clients.call(spec["client"])  # noqa: E731
            for _ in range(WARMUP_CALLS):
                await one()
            started = cpu_s()
            calls = sum([await one() for _ in range(int(spec["count"]))])
            return {"cpu_us": (cpu_s() - started) / calls * 1e6, "calls": calls}
        await clients.stream(spec["client"])  # warm-up: the connection, first-call caches
        n, spread = int(spec["streams"]), float(spec.get("spread", 0))
        start = time.perf_counter()

        async def later(i: int) -> int:
            await asyncio.sleep(max(0.0, start + i * spread / n - time.perf_counter()))
            return await clients.stream(spec["client"])
        started = cpu_s()
        chunks = sum(await asyncio.gather(*(later(i) for i in range(n))))
        return {"cpu_chunk_us": (cpu_s() - started) / chunks * 1e6 if chunks else float("nan"), "chunks": chunks}
    finally:
        await clients.close()


if __name__ == "__main__":
    import uvloop

    print(json.dumps(uvloop.run(measure(json.loads(sys.argv[1])))))
