"""completions/service.sse_events, as the OpenAI endpoint sends streams: the
events that are ready together go out in one write, and nothing waits for the provider to batch."""

from __future__ import annotations

import asyncio
import json

from llm.types import ProviderError, StreamChunk
from completions.service import DONE, StreamFrame, StreamOutcome, sse_events


def events(item: bytes) -> list[dict | str]:
    assert item.endswith(b"\n\n")
    out: list[dict | str] = []
    for part in item[:-2].split(b"\n\n"):
        assert part.startswith(b"data: ") and b"\n" not in part
        data = part[len(b"data: "):]
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def kinds(item: bytes) -> list[str]:
    out = []
    for event in events(item):
        if event == "[DONE]":
            out.append("done")
        elif "error" in event:
            out.append("error")
        elif not event["choices"]:
            out.append("usage")
        else:
            choice = event["choices"][0]
            out.append("role" if "role" in choice["delta"] else "finish" if choice["finish_reason"]
                       else f"text:{choice['delta']['content']}")
    return out


async def test_batches_only_what_is_ready():
    gate = asyncio.Event()
    frame = StreamFrame("chatcmpl-b", 1700000000, "m", include_usage=True)

    async def rest():
        await gate.wait()  # the provider has not produced the second piece yet
        yield StreamChunk(text=" world", model="m")
        yield StreamChunk(model="m", finish_reason="length", prompt_tokens=3, completion_tokens=2)

    ended: list[str] = []
    body = sse_events(frame, StreamChunk(text="Hello", model="m"), rest(), StreamOutcome(),
                      lambda exc: {"error": {"message": str(exc)}}, lambda o: ended.append(o.result))
    first = await asyncio.wait_for(anext(body), 5)  # out at once, although the provider is still busy
    assert kinds(first) == ["role", "text:Hello"]
    gate.set()
    rest_items = [item async for item in body]
    assert [kinds(item) for item in rest_items] == [["text: world"], ["finish", "usage", "done"]]
    assert rest_items[-1].endswith(DONE) and ended == ["success"]
    usage = events(rest_items[-1])[1]
    assert usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert events(rest_items[-1])[0]["choices"][0]["finish_reason"] == "length"


async def test_empty_answer_and_failure_keep_the_role_event():
    frame = StreamFrame("chatcmpl-e", 1700000000, "m")

    async def nothing():
        return
        yield  # pragma: no cover

    final = StreamChunk(model="m", finish_reason="stop")
    items = [i async for i in sse_events(frame, final, nothing(), StreamOutcome(), lambda e: {}, lambda o: None)]
    assert [kinds(i) for i in items] == [["role", "finish", "done"]]

    async def failing():
        raise ProviderError("boom", provider="waddleai", kind="connect")
        yield  # pragma: no cover

    outcome = StreamOutcome()
    items = [i async for i in sse_events(frame, final, failing(), outcome,
                                         lambda e: {"error": {"message": str(e)}}, lambda o: None)]
    assert [k for i in items for k in kinds(i)] == ["role", "error"] and outcome.result == "connect"
    assert not any(i.endswith(DONE) for i in items)
