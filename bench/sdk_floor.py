"""Diagnostic, not part of `make bench`: what one call through the `openai` SDK costs by itself.

    .venv/bin/python -m bench.sdk_floor

Starts the fake OpenAI-compatible provider in its own process, then, in this process, calls it
sequentially over one keep-alive connection in three ways and prints p50 latency and the client's
CPU time per call:
- `client.chat.completions.create(**body)`: typed params (TypedDict transform) and a typed response;
- `client.post("/chat/completions", body=…, cast_to=httpx2.Response)`: the same client, auth and
  base URL, without the param transform and the response model;
- the same `client.post` through the asyncio network layer the service uses (services/asyncio_transport.py);
- a bare `httpx2.AsyncClient.post`, on the default stack and on the asyncio layer: the HTTP stack alone.
It tells how much of the OpenAI endpoint's added latency is the SDK's own work.
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
    import httpx2
    import openai

    from services.asyncio_transport import transport2

    body = json.loads(payloads.openai_body(False))
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    ours = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0,
                              http_client=openai.DefaultAsyncHttpxClient(transport=transport2()))
    bare = httpx2.AsyncClient(base_url=url)
    bare_ours = httpx2.AsyncClient(base_url=url, transport=transport2())

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

    async def plain_ours() -> object:
        return (await bare_ours.post("/v1/chat/completions", json=body)).json()

    out = []
    for name, call in (("create() (typed)", typed), ("client.post(cast_to=Response)", low_level),
                       ("client.post, asyncio layer", low_level_ours), ("bare httpx2 post", plain),
                       ("bare httpx2 post, asyncio layer", plain_ours)):
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
    for plain_client in (bare, bare_ours):
        await plain_client.aclose()
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
