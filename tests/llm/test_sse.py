"""llm/sse.py: Server-Sent Events from bytes, however the bytes are split."""

from __future__ import annotations

import pytest

from llm.sse import Event, events

STREAM = (b": a comment\r\n"
          b"data: {\"a\": 1}\r\n\r\n"
          b"event: ping\ndata: first line\ndata:second line\nid: 7\nretry: 10\n\n"
          b"data: caf\xc3\xa9\r\r"
          b"event: only-a-name\n\n"
          b"data\n\n"
          b"data: [DONE]\n\n"
          b"data: never terminated")
EXPECTED = [Event('{"a": 1}'), Event("first line\nsecond line", "ping"), Event("café"), Event(""),
            Event("[DONE]")]


async def collect(chunks: list[bytes]) -> list[Event]:
    async def source():
        for chunk in chunks:
            yield chunk
    return [event async for event in events(source())]


async def test_whole_stream():
    assert await collect([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
async def test_any_split_gives_the_same_events(size):
    chunks = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert await collect(chunks) == EXPECTED


async def test_every_single_split_point():
    for cut in range(len(STREAM) + 1):
        assert await collect([STREAM[:cut], b"", STREAM[cut:]]) == EXPECTED, cut


async def test_an_event_is_yielded_when_its_blank_line_arrives():
    seen: list[Event] = []

    async def source():
        yield b"data: one\n\n"
        assert seen == [Event("one")], "the first event must be out before more bytes are read"
        yield b"data: two\n\n"

    async for event in events(source()):
        seen.append(event)
    assert seen == [Event("one"), Event("two")]
