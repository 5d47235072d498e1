"""The console reply sink (§6): with `ROUTER_API_URL` unset, each reply is one readable line on stdout.

    reply twitch #twitch:channel:789 @u1 [greeting, fallback] 🤖 Hey there, welcome in!

(platform, channel — `channel_id`, else `entity_id` —, user id, then the trigger and `fallback` when the
text is the canned one, then the text, whitespace folded onto the one line). Written to the stream the logs go to (the log writer
thread under `python app.py`), so reply lines and log lines never interleave mid-line. A write that
fails is a `refused` attempt: the outbox counts and logs the reply `failed`, as for a router.
"""

from __future__ import annotations

from typing import Any, TextIO

from router.client import Attempt


def reply_line(body: dict[str, Any]) -> str:
    """The one line a reply is printed as, from its body (either ROUTER_PROTOCOL shape)."""
    data = body.get("response_data") or {}
    text = body.get("chat_message") or data.get("message") or body.get("response") or ""
    channel = body.get("channel_id") or body.get("entity_id") or "?"
    head = f"reply {body.get('platform') or '?'} #{channel}"
    if body.get("user_id"):
        head += f" @{body['user_id']}"
    tags = [str(data["trigger_type"])] if data.get("trigger_type") else []
    if data.get("fallback"):
        tags.append("fallback")
    if tags:
        head += f" [{', '.join(tags)}]"
    return f"{head} {' '.join(str(text).split())}"  # one line, whatever the text holds


class ConsoleSink:
    destination = "console"
    retry_max_s = 0.0  # nothing to retry: a console write succeeds or fails at once

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def headers(self, interaction_id: str, request_id: str | None) -> dict[str, str]:
        return {}

    async def attempt(self, payload: dict[str, Any], headers: dict[str, str], number: int = 1) -> Attempt:
        try:
            self.stream.write(reply_line(payload) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken stdout
            return Attempt("refused", error=f"console: {type(exc).__name__}: {exc}")
        return Attempt("delivered")

    def wait_before(self, attempts: int, retry_after: float | None = None) -> float:
        return 0.0

    async def aclose(self) -> None:
        """Nothing to close: the stream is the process's."""
