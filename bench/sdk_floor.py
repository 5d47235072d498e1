"""Diagnostic, not part of `make bench`: what one call through the `openai` SDK costs by itself.

    .venv/bin/python -m bench.sdk_floor

Starts the fake OpenAI-compatible provider in its own process, then, in this process, calls it
sequentially over one keep-alive connection in several ways and prints p50 latency and the client's
CPU time per call (two passes, so the spread shows):
- `client.chat.completions.create(**body)`: typed params (TypedDict transform) and a typed response;
- `client.post("/chat/completions", body=…, cast_to=httpx2.Response)`: the same client, auth and
  base URL, without the param transform and the response model — on the SDK's default HTTP stack
  (httpx2 → httpcore2 → h11) and on the aiohttp transport the service uses
  (services/aiohttp_transport.py);
- a bare `httpx2.AsyncClient.post` (the SDK's HTTP stack alone) and a bare `aiohttp` post (the floor
  of the service's transport);
- a bare `httpx.AsyncClient.post` (what the Ollama and router clients send through) on httpx's default
  transport (httpcore) and on the aiohttp transport.
It tells how much of the OpenAI endpoint's added latency is the SDK's own work, and what the
transport saves on each upstream call.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bench import payloads
from bench.procs import Fleet


async def measure(url: str, calls: int = 1500) -> list[tuple[str, float, float]]:
    import aiohttp
    import httpx
    import httpx2
    import openai

    from services.aiohttp_transport import AiohttpTransport, AiohttpTransport2

    body = json.loads(payloads.openai_body(False))
    raw = json.dumps(body).encode()
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    ours = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0,
                              http_client=openai.DefaultAsyncHttpxClient(transport=AiohttpTransport2()))
    bare = httpx2.AsyncClient(base_url=url)
    httpx_default = httpx.AsyncClient(base_url=url)
    httpx_ours = httpx.AsyncClient(base_url=url, transport=AiohttpTransport())
    session = aiohttp.ClientSession(url)

    async def typed() -> object:
        return await client.chat.completions.create(**body)

    async def low_level() -> object:
        response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        return json.loads(response.content)

    async def low_level_ours() -> object:
        response = await ours.post("/chat/completions", body=body, cast_to=httpx2.Response)
        return json.loads(response.content)

    async def plain() -> object:
        return (await bare.post("/v1/chat/completions", json=body)).json()

    async def httpx_plain() -> object:
        return (await httpx_default.post("/v1/chat/completions", json=body)).json()

    async def httpx_aiohttp() -> object:
        return (await httpx_ours.post("/v1/chat/completions", json=body)).json()

    async def plain_aiohttp() -> object:
        async with session.post("/v1/chat/completions", data=raw,
                                headers={"content-type": "application/json"}) as response:
            return json.loads(await response.read())

    out = []
    for name, call in (("create() (typed)", typed), ("client.post(cast_to=Response)", low_level),
                       ("client.post, aiohttp transport", low_level_ours), ("bare httpx2 post", plain),
                       ("bare aiohttp post", plain_aiohttp), ("httpx post (httpcore)", httpx_plain),
                       ("httpx post, aiohttp transport", httpx_aiohttp)) * 2:
        for _ in range(200):
            await call()
        latencies = []
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(calls):
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / calls
        out.append((name, statistics.median(latencies) * 1000, cpu * 1e6))
    for closing in (client, ours):
        await closing.close()
    for closing_plain in (bare, httpx_default, httpx_ours):
        await closing_plain.aclose()
    await session.close()
    return out


def main() -> None:
    import uvloop

    fleet = Fleet(Path(tempfile.mkdtemp(prefix="aim-sdk-floor-")))
    try:
        fake = fleet.fake("openai")
        fake.wait_ready("/__bench/stats")
        for name, p50, cpu in uvloop.run(measure(fake.url)):
            print(f"{name:32s} p50 {p50:5.2f} ms   client CPU per call {cpu:5.0f} µs")
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
