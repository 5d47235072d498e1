"""Streamed chat completions as OpenAI sends them: Server-Sent Events, one `data: {json}\\n\\n` each.

    data: {"id": "chatcmpl-…", "object": "chat.completion.chunk", …, "choices": [{"delta": {"role": "assistant", …}}]}
    data: {… "choices": [{"delta": {"content": "Hel"}, "finish_reason": null}]}      (as produced)
    data: {… "choices": [{"delta": {}, "finish_reason": "stop"}]}
    data: {… "choices": [], "usage": {…}}                                            (include_usage)
    data: [DONE]

`open_stream` waits for the provider's first chunk (failing over before it), so a provider that
fails before producing anything is an HTTP error, not a stream. After that, a provider failure is
sent in-band as `data: {"error": {…}}` and the stream ends WITHOUT `[DONE]`: `[DONE]` means the
answer is complete, and the openai SDK raises `APIError` on the error event. Closing the
generator (client gone) closes the provider stream and frees the concurrency slot.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Awaitable, Any, AsyncIterator, Callable

from providers.base import ProviderError, StreamChunk
from services.completions import CompletionInput, encode_json, finish_reason, plan, usage
from services.llm import LLMService, StreamStats
from services.logs import get_logger

log = get_logger(__name__)

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + encode_json(payload) + b"\n\n"


@dataclass(slots=True)
class StreamFrame:
    """What every chunk of one stream shares: id, created, model (and `usage: null` when asked).

    That shared part is encoded once per stream; each chunk encodes only its choice."""

    id: str
    created: int
    model: str
    include_usage: bool = False
    _head: bytes = field(init=False, repr=False, default=b"")

    def __post_init__(self) -> None:
        base = encode_json({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "system_fingerprint": None})
        self._head = b"data: " + base[:-1] + b',"choices":['

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = encode_json({"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish})
        return self._head + choice + (b'],"usage":null}\n\n' if self.include_usage else b"]}\n\n")

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
    """The SSE body: role delta, content deltas as produced, final chunk, usage, [DONE].

    Events that are ready together go out as one item (one write to the client): the role delta with
    the first content delta (or whatever follows it), and the final chunk, usage and [DONE]. Nothing
    waits for more provider output to be batched."""
    final: StreamChunk | None = None
    pending = frame.chunk({"role": "assistant", "content": ""})
    try:
        async with aclosing(chunks):  # closed however this generator ends
            chunk: StreamChunk | None = first
            while chunk is not None:
                if chunk.text:
                    yield pending + frame.chunk({"content": chunk.text})
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
