"""A loopback fake of an OpenAI-compatible proxy (WaddleAI): /v1/chat/completions, /v1/models, /healthz.

Same knobs as FakeOllama (see FakeUpstream); `api_key` (when set) must arrive as a Bearer token.

Real proxies' ways, as their sources answer: `healthz = False` answers /healthz with 404 (LiteLLM,
vLLM); `portkey = True` is Portkey's gateway (no /healthz; every /v1 call without `x-portkey-provider`
or `x-portkey-config` gets its 400 `{"status": "failure", "message": …}`, src/middlewares/requestValidator);
`unknown_model_as` says "no such model" the way `openai` (404), `litellm` (400 "Invalid model name")
or `vllm` (404 `{"object": "error", …}`) do; `failing_models` fails only the named models
(model → status, e.g. a model's 429 quota).

Answers beyond text and tool calls: `function_call` ({"name", "arguments": {…}}) answers with a
legacy function call (streamed as OpenAI does: name, then argument pieces); `message_extra` goes
into the answer's message as is (`audio`, `annotations`, …) and `envelope` into the completion and
every chunk (`service_tier`, `system_fingerprint`, …).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.fakes.fake_ollama import FakeUpstream, Receive, Send


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI(FakeUpstream):
    chat_path = "/v1/chat/completions"

    def __init__(self) -> None:
        super().__init__()
        self.models = ["gpt-4o-mini", "llama3.2"]
        self.api_key: str | None = None
        self.healthz = True
        self.portkey = False
        self.unknown_model_as = "openai"  # | "litellm" | "vllm"
        self.failing_models: dict[str, int] = {}
        self.function_call: dict[str, Any] | None = None
        self.message_extra: dict[str, Any] = {}
        self.envelope: dict[str, Any] = {}

    async def handle(self, method: str, path: str, headers: dict[str, str], body: Any,
                     receive: Receive, send: Send) -> None:
        if path == "/healthz" and method == "GET" and (self.portkey or not self.healthz):
            return await self.respond(send, 404, b"404 Not Found" if self.portkey else {"detail": "Not Found"},
                                      "text/plain" if self.portkey else "application/json")
        if self.portkey and path.startswith("/v1/") and not (
                headers.get("x-portkey-provider") or headers.get("x-portkey-config")):
            return await self.respond(send, 400, {
                "status": "failure", "message": "Either x-portkey-config or x-portkey-provider header is required"})
        if path == "/healthz" and method == "GET":
            ok = self.healthy
            return await self.respond(send, 200 if ok else 503, {"status": "healthy" if ok else "unhealthy"})
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return await self.respond(send, 401, _error("Incorrect API key provided", "invalid_request_error",
                                                        "invalid_api_key"))
        if path == "/v1/models" and method == "GET":
            if not self.healthy:
                return await self.respond(send, 503, _error("unhealthy", "server_error"))
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "waddleai"}
                    for m in self.models]
            return await self.respond(send, 200, {"object": "list", "data": data})
        if path != self.chat_path or method != "POST":
            return await self.respond(send, 404, _error(f"Unknown path {path}", "invalid_request_error"))
        self.calls += 1
        await self.pause(self.delay)
        if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
            return await self.respond(send, 400, _error("model and messages are required",
                                                        "invalid_request_error"))
        model = body["model"]
        if self.strict_models and model not in self.models:
            return await self._unknown_model(send, model)
        if model in self.failing_models:
            status = self.failing_models[model]
            return await self.respond(send, status, _error(
                f"fake failure {status} of model {model}", "rate_limit_error" if status == 429 else "server_error"))
        fault = self.take_fault()
        if fault and self.hang:
            return await self.hang_until_released(receive)
        if fault and self.fail_status:
            kind = "server_error" if self.fail_status >= 500 else "invalid_request_error"
            return await self.respond(send, self.fail_status, _error(f"fake failure {self.fail_status}", kind))
        if fault and self.garbage:
            bad = {"unexpected": True} if self.garbage == "shape" else b"<html>not json</html>"
            return await self.respond(send, 200, bad)
        name = self.model_name or model
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(send, name, usage, fault, body)
        message: dict[str, Any] = {"role": "assistant", "content": self.reply, "refusal": None, **self.message_extra}
        if self.tool_calls:
            message.update(content=None, tool_calls=[
                {"id": f"call_{i}_{uuid.uuid4().hex[:8]}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                for i, c in enumerate(self.tool_calls)])
        if self.function_call:
            message.update(content=None, function_call={
                "name": self.function_call["name"], "arguments": json.dumps(self.function_call["arguments"])})
        await self.respond(send, 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": name, "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": self._logprobs(body, self.pieces()),
                         "finish_reason": self._finish()}],
            "usage": self._usage(), **self.envelope})

    def _finish(self) -> str:
        if self.function_call:
            return "function_call"
        return "tool_calls" if self.tool_calls else self.done_reason

    def _logprobs(self, body: dict[str, Any], pieces: list[str]) -> dict[str, Any] | None:
        if not body.get("logprobs"):
            return None
        content = []
        for piece in pieces:
            entry = self.piece_logprobs(piece, body.get("top_logprobs") or 0)
            for item in [entry, *entry["top_logprobs"]]:
                item["bytes"] = list(item["token"].encode())
            content.append(entry)
        return {"content": content, "refusal": None}

    async def _unknown_model(self, send: Send, model: str) -> None:
        if self.unknown_model_as == "litellm":  # litellm/proxy/route_llm_request.py ProxyModelNotFoundError
            message = (f"/chat/completions: Invalid model name passed in model={model}. "
                       "Call `/v1/models` to view available models for your key.")
            return await self.respond(send, 400, _error(message, "invalid_request_error", "400"))
        if self.unknown_model_as == "vllm":
            return await self.respond(send, 404, {"object": "error", "message": f"The model `{model}` does not exist.",
                                                  "type": "NotFoundError", "param": None, "code": 404})
        await self.respond(send, 404, _error(f"The model `{model}` does not exist or you do not have access to it.",
                                             "invalid_request_error", "model_not_found", "model"))

    def _usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    async def _stream(self, send: Send, model: str, include_usage: bool, fault: bool,
                      body: dict[str, Any] | None = None) -> None:
        body = body or {}
        self.stream_started_at, self.last_stream_finished_at = time.monotonic(), None
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": None, **self.envelope}
        extra = {"usage": None} if include_usage else {}

        def event(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice], **extra}).encode() + b"\n\n"

        await self.start(send, 200, "text/event-stream")
        await self.chunk(send, event({"role": "assistant", "content": "", "refusal": None}))
        for index, piece in enumerate(self.pieces()):
            if index:
                await self.pause(self.token_delay)
            if fault and self.error_midstream_after is not None and index >= self.error_midstream_after:
                error = _error("fake error mid-stream", "server_error")
                await self.chunk(send, b"data: " + json.dumps(error).encode() + b"\n\n", more=False)
                self.last_stream_finished_at = time.monotonic()
                return
            await self.chunk(send, event({"content": piece}, logprobs=self._logprobs(body, [piece])))
        for index, call in enumerate(self.tool_calls):  # as OpenAI streams them: head, then argument pieces
            await self.pause(self.token_delay)
            head = {"index": index, "id": f"call_{index}_{uuid.uuid4().hex[:8]}", "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}
            await self.chunk(send, event({"tool_calls": [head]}))
            arguments = json.dumps(call["arguments"])
            for start in range(0, len(arguments), 8):
                piece = {"index": index, "function": {"arguments": arguments[start:start + 8]}}
                await self.chunk(send, event({"tool_calls": [piece]}))
        if self.function_call:  # the legacy call: name first, then the arguments in pieces
            await self.chunk(send, event({"function_call": {"name": self.function_call["name"], "arguments": ""}}))
            arguments = json.dumps(self.function_call["arguments"])
            for start in range(0, len(arguments), 8):
                await self.chunk(send, event({"function_call": {"arguments": arguments[start:start + 8]}}))
        await self.pause(self.token_delay)
        await self.chunk(send, event({}, self._finish()))
        if include_usage:
            usage_chunk = {**base, "choices": [], "usage": self._usage()}
            await self.chunk(send, b"data: " + json.dumps(usage_chunk).encode() + b"\n\n")
        await self.chunk(send, b"data: [DONE]\n\n", more=False)
        self.last_stream_finished_at = time.monotonic()
