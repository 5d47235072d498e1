"""A loopback fake of Ollama's native REST API (/api/chat, /api/tags, /api/version).

Raw ASGI, run with tests/server_thread.py. `FakeUpstream` holds the knobs and bookkeeping shared
with fake_openai.py; tests may change any attribute at any time, from any thread.

`tool_calls` ([{"name", "arguments": {…}}]) makes either fake answer by calling those tools, each
in its own wire shape; a request with `logprobs: true` gets log probabilities for every piece.
FakeOllama's `thinking` is its reasoning text, sent (as `message.thinking`) when a request asks to think.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from tests.fakes.asgi import is_http, read_body

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class FakeUpstream:
    """Controllable state, request recording and ASGI plumbing for the fake LLM servers."""

    chat_path = ""
    url = ""  # set by the fixture

    def __init__(self) -> None:
        self.reply = "Hello there, friend of the stream!"
        self.model_name: str | None = None  # None: echo the requested model
        self.models: list[str] = ["llama3.2:latest"]
        self.strict_models = False  # unknown model → 404
        self.fail_status: int | None = None
        self.fail_times: int | None = None  # None: every call; N: only the next N calls
        self.delay = 0.0
        self.hang = False
        self.garbage: bool | str = False  # True: not JSON; "shape": JSON of the wrong shape
        self.token_delay = 0.0
        self.error_midstream_after: int | None = None
        self.prompt_tokens = 12
        self.completion_tokens = 7
        self.done_reason = "stop"
        self.healthy = True  # False: health/list endpoints answer 503
        self.tool_calls: list[dict[str, Any]] = []  # [{"name", "arguments": {…}}]: the model calls these
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.clients: set[tuple[str, int]] = set()  # the callers' (host, port): one per connection used
        self.calls = 0  # chat calls
        self.stream_started_at: float | None = None
        self.last_stream_finished_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None

    # --- helpers for tests ----------------------------------------------------------------
    @property
    def chat_requests(self) -> list[tuple[str, dict[str, str], Any]]:
        return [r for r in self.requests if r[0] == self.chat_path]

    @property
    def connections(self) -> int:
        """Distinct client connections the requests so far came over."""
        return len(self.clients)

    @property
    def last_body(self) -> Any:
        return self.chat_requests[-1][2]

    def release(self) -> None:
        """End every hang and pause now (called by the fixture before the server stops)."""
        if self._loop and self._release and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._release.set)

    def pieces(self) -> list[str]:
        return re.findall(r"\s*\S+", self.reply) or [""]

    @staticmethod
    def piece_logprobs(piece: str, top: int) -> dict[str, Any]:
        """Made-up log probabilities of one piece, and `top` alternatives."""
        alternatives = [{"token": f"{piece}~{k}", "logprob": -1.0 - k} for k in range(top)]
        return {"token": piece, "logprob": -0.25, "top_logprobs": alternatives}

    def take_fault(self) -> bool:
        """True when this chat call should misbehave (consumes one of `fail_times`)."""
        if self.fail_times is None:
            return True
        if self.fail_times > 0:
            self.fail_times -= 1
            return True
        return False

    # --- ASGI -------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not await is_http(scope, receive, send):
            return
        self._loop = asyncio.get_running_loop()
        if self._release is None:
            self._release = asyncio.Event()
        body = await read_body(receive)
        if body is None:
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = body.decode(errors="replace")
        self.requests.append((scope["path"], headers, payload))
        if scope.get("client"):
            self.clients.add(tuple(scope["client"]))
        await self.handle(scope["method"], scope["path"], headers, payload, receive, send)

    async def handle(self, method: str, path: str, headers: dict[str, str], body: Any,
                     receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def pause(self, seconds: float) -> None:
        if seconds > 0 and self._release and not self._release.is_set():
            try:
                await asyncio.wait_for(self._release.wait(), seconds)
            except asyncio.TimeoutError:
                pass

    async def hang_until_released(self, receive: Receive) -> None:
        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
        assert self._release is not None
        waiters = [asyncio.ensure_future(self._release.wait()), asyncio.ensure_future(disconnected())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    @staticmethod
    async def start(send: Send, status: int, content_type: str) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode())]})

    @staticmethod
    async def respond(send: Send, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        await FakeUpstream.start(send, status, content_type)
        await send({"type": "http.response.body", "body": data})

    @staticmethod
    async def chunk(send: Send, data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class FakeOllama(FakeUpstream):
    chat_path = "/api/chat"

    def __init__(self) -> None:
        super().__init__()
        self.thinking = ""  # sent when the request has a truthy `think`

    async def handle(self, method: str, path: str, headers: dict[str, str], body: Any,
                     receive: Receive, send: Send) -> None:
        if path == "/api/version" and method == "GET":
            return await self.respond(send, *self._health({"version": "0.6.3"}))
        if path == "/api/tags" and method == "GET":
            return await self.respond(send, *self._health({"models": [self._tag(m) for m in self.models]}))
        if path != self.chat_path or method != "POST":
            return await self.respond(send, 404, b"404 page not found", "text/plain")
        self.calls += 1
        await self.pause(self.delay)
        if not isinstance(body, dict) or not body.get("model"):
            return await self.respond(send, 400, {"error": "model is required"})
        model = body["model"]
        known = {m.split(":")[0] for m in self.models} | set(self.models)
        if self.strict_models and model not in known:
            return await self.respond(send, 404, {"error": f"model '{model}' not found"})
        fault = self.take_fault()
        if fault and self.hang:
            return await self.hang_until_released(receive)
        if fault and self.fail_status:
            return await self.respond(send, self.fail_status, {"error": f"fake failure {self.fail_status}"})
        if fault and self.garbage:
            bad = {"unexpected": True} if self.garbage == "shape" else b"<html>not json</html>"
            return await self.respond(send, 200, bad)
        name = self.model_name or model
        if body.get("stream", True):
            return await self._stream(send, name, fault, body)
        final = self._final(name, self.reply)
        if self.tool_calls:
            final["message"]["tool_calls"] = [self._tool_call(call) for call in self.tool_calls]
        if body.get("think") and self.thinking:
            final["message"]["thinking"] = self.thinking
        if body.get("logprobs"):
            final["logprobs"] = [self.piece_logprobs(p, body.get("top_logprobs") or 0) for p in self.pieces()]
        await self.respond(send, 200, final)

    @staticmethod
    def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
        return {"function": {"name": call["name"], "arguments": call["arguments"]}}

    def _health(self, ok_body: dict[str, Any]) -> tuple[int, Any]:
        return (200, ok_body) if self.healthy else (503, {"error": "unhealthy"})

    @staticmethod
    def _tag(name: str) -> dict[str, Any]:
        return {"name": name, "model": name, "modified_at": _now(), "size": 2019393189,
                "digest": "a80c4f17acd5", "details": {"format": "gguf", "family": "llama",
                                                      "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}

    def _final(self, model: str, content: str) -> dict[str, Any]:
        return {"model": model, "created_at": _now(),
                "message": {"role": "assistant", "content": content}, "done": True,
                "done_reason": self.done_reason, "total_duration": 4_883_583_458,
                "load_duration": 1_334_875, "prompt_eval_count": self.prompt_tokens,
                "prompt_eval_duration": 342_546_000, "eval_count": self.completion_tokens,
                "eval_duration": 4_535_599_000}

    async def _stream(self, send: Send, model: str, fault: bool, body: dict[str, Any] | None = None) -> None:
        body = body or {}
        self.stream_started_at, self.last_stream_finished_at = time.monotonic(), None
        await self.start(send, 200, "application/x-ndjson")
        if body.get("think") and self.thinking:  # the reasoning comes first, in a line of its own
            line = {"model": model, "created_at": _now(), "done": False,
                    "message": {"role": "assistant", "content": "", "thinking": self.thinking}}
            await self.chunk(send, json.dumps(line).encode() + b"\n")
        for index, piece in enumerate(self.pieces()):
            if index:
                await self.pause(self.token_delay)
            if fault and self.error_midstream_after is not None and index >= self.error_midstream_after:
                await self.chunk(send, b'{"error":"fake error mid-stream"}\n', more=False)
                self.last_stream_finished_at = time.monotonic()
                return
            line = {"model": model, "created_at": _now(),
                    "message": {"role": "assistant", "content": piece}, "done": False}
            if body.get("logprobs"):
                line["logprobs"] = [self.piece_logprobs(piece, body.get("top_logprobs") or 0)]
            await self.chunk(send, json.dumps(line).encode() + b"\n")
        for call in self.tool_calls:  # each whole, in a line of its own, as Ollama parses them
            await self.pause(self.token_delay)
            line = {"model": model, "created_at": _now(), "done": False,
                    "message": {"role": "assistant", "content": "", "tool_calls": [self._tool_call(call)]}}
            await self.chunk(send, json.dumps(line).encode() + b"\n")
        await self.pause(self.token_delay)
        await self.chunk(send, json.dumps(self._final(model, "")).encode() + b"\n", more=False)
        self.last_stream_finished_at = time.monotonic()
