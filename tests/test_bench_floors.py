"""The OpenAI floor proxies of the benchmarks (bench/baseline_app.py, bench/proxy_floors.py) relay
completions from the fake provider faithfully, streamed and not: a floor that answered without
calling upstream, or mangled the answer, would make the benchmark's floor rows meaningless.
Real processes on loopback, as `make bench` runs them; no timing is asserted."""

from __future__ import annotations

import json

import pytest

from bench import payloads
from bench.procs import Fleet, http


@pytest.fixture(scope="module")
def floors(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("floors"))
    try:
        fake = fleet.fake("openai")
        fake.wait_ready("/__bench/stats")
        procs = {"sdk": fleet.baseline(fake.url), "quart": fleet.proxy_floor("quart", fake.url),
                 "asgi": fleet.proxy_floor("asgi", fake.url)}
        for proc in procs.values():
            proc.wait_ready("/health")
        yield fake, procs
    finally:
        fleet.close()


def _calls(fake) -> int:
    return http("GET", fake.url + "/__bench/stats")[1]["calls"]


@pytest.mark.parametrize("kind", ["sdk", "quart", "asgi"])
def test_a_floor_relays_the_providers_completion(floors, kind):
    fake, procs = floors
    direct_status, direct, _ = http("POST", fake.url + "/v1/chat/completions", payloads.openai_body(False))
    before = _calls(fake)
    status, answer, headers = http("POST", procs[kind].url + "/v1/chat/completions", payloads.openai_body(False))
    assert (status, direct_status) == (200, 200)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == direct["choices"][0]["message"]
    assert "application/json" in {k.lower(): v for k, v in headers.items()}["content-type"]
    assert _calls(fake) == before + 1  # it went upstream, once


@pytest.mark.parametrize("kind", ["sdk", "quart", "asgi"])
def test_a_floor_relays_the_providers_stream(floors, kind):
    fake, procs = floors
    before = _calls(fake)
    status, text, headers = http("POST", procs[kind].url + "/v1/chat/completions", payloads.openai_body(True))
    assert status == 200
    assert "text/event-stream" in {k.lower(): v for k, v in headers.items()}["content-type"]
    events = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert _calls(fake) == before + 1
