"""What happens to an OpenAI-compatible chat completion, after the HTTP layer (web/openai_api.py)
has authenticated, rate-limited and validated it:

1. `plan()` turns the requested model into (provider, request) attempts:
   - `<provider>/<name>` where `<provider>` is a configured provider (`ollama`, `waddleai`): that
     provider only, with model `<name>`; no failover (the client chose).
   - missing or empty, or equal to a configured provider's default model (OLLAMA_MODEL,
     WADDLEAI_MODEL): that provider's default model (the primary's when missing), failing over to
     the other provider's default model, as the interaction path does.
   - any other name: the primary provider with that name, then the fallback with the same name.
     A provider's "model not found" ends as 404 `model_not_found`.
   Then fidelity: when the first attempt's provider cannot honour a parameter of the request
   (`Provider.unsupported`), the completion is refused with its name (400, `param`); a later attempt
   whose provider cannot honour it is dropped, so failover never degrades a request silently.
2. `complete()` calls the first attempt that answers (llm/service.py: breaker, concurrency cap,
   failover) and returns the `chat.completion` body; `stream()` waits for the first chunk (failing
   over before it, so a provider that fails before producing anything is an HTTP error) and returns
   the Server-Sent Events:

    data: {"id": "chatcmpl-…", "object": "chat.completion.chunk", …, "choices": [{"delta": {"role": "assistant", …}}]}
    data: {… "choices": [{"delta": {"content": "Hel"}, "finish_reason": null}]}      (as produced)
    data: {… "choices": [{"delta": {"tool_calls": [{"index": 0, "id": …, "function": …}]}, …}]}   (as produced)
    data: {… "choices": [{"delta": {}, "finish_reason": "stop"}]}
    data: {… "choices": [], "usage": {…}}                                            (include_usage)
    data: [DONE]

   After the first chunk a provider failure is sent in-band as `data: {"error": {…}}` and the
   stream ends WITHOUT `[DONE]` (the openai SDK raises `APIError` on it). Closing the stream
   (client gone) closes the provider stream and frees the concurrency slot.
3. Each completion is logged once (key and user as hashes, provider, model, result, tokens) and its
   token usage recorded (community 0: the OpenAI API has no community).

Completions never run triggers, never read or write the chat context, never clean or prefix replies.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Awaitable, Callable

from llm.service import Attempt, LLMService, StreamStats
from llm.types import ChatRequest, ChatResult, ProviderError, StreamChunk
from observability.logs import get_logger
from storage.usage import UsageStore

log = get_logger(__name__)

FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls", "function_call"})
OBFUSCATION_MAX = 24  # bytes of randomness at most in one chunk's `obfuscation`
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one encoder, not one per call
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate from the provider ("\\ud83d") is kept, escaped."""
    text = _ENCODER.encode(payload)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(payload).encode()


@dataclass(frozen=True, slots=True)
class CompletionInput:
    """A validated completion request: `request` in the provider-neutral vocabulary (its `model`
    unset: `plan()` decides it from `model`, the name the client asked for)."""

    request: ChatRequest
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    include_obfuscation: bool = False  # stream_options.include_obfuscation: honoured here, never sent upstream


def plan(llm: LLMService, given: CompletionInput) -> list[Attempt]:
    """The (provider, request) attempts for this completion, in order (see the module rule).
    Raises UnsupportedParameter when the first provider cannot honour the request."""
    attempts = _route(llm, given)
    first, request = attempts[0]
    refused = llm.providers[first].unsupported(request)
    if refused is not None:
        raise refused
    return [attempts[0]] + [(n, r) for n, r in attempts[1:] if llm.providers[n].unsupported(r) is None]


def _route(llm: LLMService, given: CompletionInput) -> list[Attempt]:
    def request(model: str | None) -> ChatRequest:
        return replace(given.request, model=model)

    model = (given.model or "").strip()
    provider, slash, name = model.partition("/")
    if slash and name and provider in llm.providers:
        return [(provider, request(name))]
    order = llm.order()
    if not model:
        default = request(None)
        return [(n, default) for n in order]
    for owner in order:
        if llm.providers[owner].default_model == model:
            default = request(None)
            return [(n, default) for n in llm.order(owner)]
    named = request(model)
    return [(n, named) for n in order]


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def finish_reason(value: str | None) -> str:
    return value if value in FINISH_REASONS else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(result: ChatResult, completion_id: str, created: int) -> dict[str, Any]:
    """The OpenAI `chat.completion` object, not wrapped; the upstream's other fields as it sent them."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None,
                               **(result.message_extra or {})}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    if result.tool_calls or "function_call" in message:
        message["content"] = result.text or None  # OpenAI: null content beside the calls
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": result.model,
        "choices": [{
            "index": 0, "message": message,
            "logprobs": result.logprobs, "finish_reason": finish_reason(result.finish_reason),
        }],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
        "system_fingerprint": None, **(result.completion_extra or {}),
    }


DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + encode_json(payload) + b"\n\n"


@dataclass(slots=True)
class StreamFrame:
    """What every chunk of one stream shares: id, created, model, the upstream's other chunk fields
    (`extra`: service_tier, system_fingerprint, … as its first piece came with them), and `usage:
    null` when asked.

    That shared part is encoded once per stream; each chunk encodes only its choice (and, with
    `include_obfuscation`, OpenAI's `obfuscation` padding: random characters of random length that
    hide the size of each piece from someone watching the encrypted stream)."""

    id: str
    created: int
    model: str
    include_usage: bool = False
    extra: dict[str, Any] | None = None
    include_obfuscation: bool = False
    _head: bytes = field(init=False, repr=False, default=b"")
    _tail: bytes = field(init=False, repr=False, default=b"")

    def __post_init__(self) -> None:
        base = encode_json({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "system_fingerprint": None, **(self.extra or {})})
        self._head = b"data: " + base[:-1] + b',"choices":['
        self._tail = b'],"usage":null' if self.include_usage else b"]"

    def chunk(self, delta: dict[str, Any], finish: str | None = None,
              logprobs: dict[str, Any] | None = None) -> bytes:
        choice = encode_json({"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
        padding = b',"obfuscation":"' + _padding() + b'"' if self.include_obfuscation else b""
        return self._head + choice + self._tail + padding + b"}\n\n"

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return self._head + b'],"usage":' + encode_json(usage(prompt_tokens, completion_tokens)) + b"}\n\n"


@dataclass(slots=True)
class StreamOutcome:
    """How the stream ended, for the caller's log line: success, an error kind, or cancelled."""

    result: str = "cancelled"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stats: StreamStats = field(default_factory=StreamStats)


async def open_stream(llm: LLMService, given: CompletionInput,
                      outcome: StreamOutcome) -> tuple[StreamChunk, AsyncIterator[StreamChunk]]:
    """Start the provider stream and wait for its first chunk; raises ProviderError before it."""
    chunks = llm.stream_first(plan(llm, given), outcome.stats)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:  # stream_first raises rather than ending empty; be safe anyway
        raise ProviderError("provider stream ended without output", provider="unknown", kind="garbage") from None
    return first, chunks


async def sse_events(frame: StreamFrame, first: StreamChunk, chunks: AsyncIterator[StreamChunk],
                     outcome: StreamOutcome, error_body: Callable[[BaseException], dict[str, Any]],
                     on_end: Callable[[StreamOutcome], None],
                     record_usage: Callable[[StreamChunk], Awaitable[None]] | None = None,
                     ) -> AsyncIterator[bytes]:
    """The SSE body: role delta, content and tool-call deltas as produced, final chunk, usage, [DONE].

    Events that are ready together go out as one item (one write to the client): the role delta with
    the first content delta (or whatever follows it), and the final chunk, usage and [DONE]. Nothing
    waits for more provider output to be batched."""
    final: StreamChunk | None = None
    pending = frame.chunk({"role": "assistant", "content": ""})
    try:
        async with aclosing(chunks):  # closed however this generator ends
            chunk: StreamChunk | None = first
            while chunk is not None:
                if chunk.has_output:
                    yield pending + frame.chunk(_delta(chunk), logprobs=chunk.logprobs)
                    pending = b""
                if chunk.finish_reason:
                    final = chunk
                chunk = await anext(chunks, None)
        if final is None:
            raise ProviderError("provider stream ended without a final chunk", provider="unknown", kind="garbage")
        outcome.result = "success"
    except Exception as exc:
        outcome.result = exc.kind if isinstance(exc, ProviderError) else "internal_error"
        if not isinstance(exc, ProviderError):
            log.error("stream failed", action="openai_stream", error_type=type(exc).__name__, exc_info=exc)
        if pending:
            yield pending
        yield sse(error_body(exc))
        return
    finally:
        if final is not None:
            outcome.prompt_tokens, outcome.completion_tokens = final.prompt_tokens, final.completion_tokens
        on_end(outcome)  # result stays "cancelled" when the client went away first
    if record_usage is not None:
        await record_usage(final)
    tail = [pending, frame.chunk({}, finish_reason(final.finish_reason))]
    if frame.include_usage:
        tail.append(frame.usage_chunk(final.prompt_tokens, final.completion_tokens))
    tail.append(DONE)
    yield b"".join(tail)


def _padding() -> bytes:
    return secrets.token_urlsafe(secrets.randbelow(OBFUSCATION_MAX) + 1).encode()


def _delta(chunk: StreamChunk) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": chunk.text} if chunk.text else {}
    if chunk.tool_calls:
        delta["tool_calls"] = chunk.tool_calls
    if chunk.delta_extra:
        delta.update(chunk.delta_extra)
    return delta


@dataclass(slots=True)
class CompletionCall:
    """One completion as the HTTP layer hands it over, and what it learns for the response headers."""

    given: CompletionInput
    key: str | None = None  # the API key, as its hash
    user: str | None = None  # the caller's `user`, as its hash
    started: float = field(default_factory=time.perf_counter)
    provider_s: float = 0.0  # spent inside provider calls (a stream: waiting for its first chunk)

    def log(self, result: str, **extra: Any) -> None:
        level = log.info if result in ("success", "cancelled") else log.warning
        level("openai completion", action="openai_completion", result=result, key=self.key, user=self.user,
              stream=self.given.stream, requested_model=self.given.model,
              execution_time_ms=round((time.perf_counter() - self.started) * 1000, 2), **extra)


async def complete(llm: LLMService, usage_store: UsageStore, call: CompletionCall) -> bytes:
    """The `chat.completion` body (JSON) of a non-streamed completion; raises ProviderError."""
    spent: list[float] = []
    try:
        result = await llm.complete(plan(llm, call.given), spent)
    except ProviderError as exc:
        call.log(exc.kind, provider=exc.provider)
        raise
    finally:
        call.provider_s = sum(spent)
    call.log("success", provider=result.provider, model=result.model, prompt_tokens=result.prompt_tokens,
             completion_tokens=result.completion_tokens)
    await usage_store.record(None, result.provider, result.model, result.prompt_tokens, result.completion_tokens)
    return encode_json(completion_body(result, new_completion_id(), int(time.time())))


async def stream(llm: LLMService, usage_store: UsageStore, call: CompletionCall,
                 error_body: Callable[[BaseException], dict[str, Any]]) -> AsyncIterator[bytes]:
    """The SSE body of a streamed completion, once the provider's first chunk is here (raises
    ProviderError before it). `error_body` words an in-band failure."""
    outcome = StreamOutcome()
    try:
        first, chunks = await open_stream(llm, call.given, outcome)
    except ProviderError as exc:
        call.log(exc.kind, provider=exc.provider)
        raise
    finally:
        call.provider_s = outcome.stats.provider_wait_s
    frame = StreamFrame(new_completion_id(), int(time.time()), first.model or call.given.model or "",
                        call.given.include_usage, first.chunk_extra, call.given.include_obfuscation)

    def on_end(done: StreamOutcome) -> None:
        call.log(done.result, provider=done.stats.provider, model=frame.model, prompt_tokens=done.prompt_tokens,
                 completion_tokens=done.completion_tokens)

    async def record_usage(final: StreamChunk) -> None:
        await usage_store.record(None, outcome.stats.provider or "unknown", final.model or frame.model,
                                 final.prompt_tokens, final.completion_tokens)

    return sse_events(frame, first, chunks, outcome, error_body, on_end, record_usage)
