"""Server-Sent Events from a byte stream, as the WHATWG spec reads them (what `openai.AsyncStream` does).

Lines end in LF, CRLF or CR; `data:` lines of one event are joined with "\\n"; a blank line ends the
event; `:` lines are comments; `event:` names the event; `id:` and `retry:` are read and ignored.
An event with no `data` line is not dispatched. At the end of the stream an unterminated event is
dropped, as the spec says.
"""

from __future__ import annotations

from typing import AsyncIterable, AsyncIterator, NamedTuple


class Event(NamedTuple):
    data: str
    event: str | None = None


async def events(chunks: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    """Yield each event as soon as its terminating blank line has arrived."""
    pending = b""
    data: list[str] = []
    name: str | None = None
    async for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        if b"\r" in pending:
            if pending.endswith(b"\r"):  # may be the first half of a CRLF: wait for the next byte
                head, pending = pending[:-1], b"\r"
            else:
                head, pending = pending, b""
            lines = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            pending = lines.pop() + pending
        else:
            lines = pending.split(b"\n")
            pending = lines.pop()
        for raw in lines:
            if not raw:
                if data:
                    yield Event("\n".join(data), name)
                data, name = [], None
                continue
            line = raw.decode("utf-8", "replace")
            field, colon, value = line.partition(":")
            if not colon:
                value = ""
            elif value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                name = value
            # "" (a comment), "id", "retry" and unknown fields: ignored
