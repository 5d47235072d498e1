"""ASGI plumbing shared by the fakes (and bench/fakes.py): lifespan answers and body reading."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan startup and shutdown; return at shutdown."""
    while True:
        message = await receive()
        kind = message["type"].rsplit(".", 1)[-1]
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def is_http(scope: dict[str, Any], receive: Receive, send: Send) -> bool:
    """True for an HTTP request; a lifespan scope is answered here, anything else ignored."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
    return scope["type"] == "http"


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected before sending it."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
