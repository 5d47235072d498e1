"""The span of one provider call, with OpenTelemetry's GenAI attributes (docs/design.md "Tracing").

    chat {model}   kind CLIENT, one per attempt (a failover makes two), for chat and streams alike
        gen_ai.operation.name       "chat"
        gen_ai.provider.name        "ollama" | "waddleai"   (gen_ai.system too: older backends read it)
        gen_ai.request.model        the model asked for (the provider's default when none was named)
        gen_ai.request.temperature / .max_tokens / .top_p   when given
        gen_ai.response.model       the model that answered
        gen_ai.response.finish_reasons   ["stop"], ["length"], ["tool_calls"], …
        gen_ai.usage.input_tokens / .output_tokens   as the provider counted them
        error.type                  the failure's kind (timeout, connect, bad_status, unavailable, …)

The call's `traceparent` names this span as the parent (`traced()` adds it to the request's headers;
the span is not made current, so a stream's span never leaks into its consumer's context).
No message, prompt or reply text goes into a span.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, Iterator

from llm.types import ChatRequest, ChatResult, ProviderError, StreamChunk
from observability import tracing

OPERATION = "chat"


def chat_span(provider: str, model: str, request: ChatRequest) -> AbstractContextManager[tracing.Span]:
    """The block of one provider call; a failure escaping it is recorded by its kind."""
    return _chat_span(provider, model, request) if tracing.enabled() else tracing.NO_SPAN


@contextmanager
def _chat_span(provider: str, model: str, request: ChatRequest) -> Iterator[tracing.Span]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION, "gen_ai.provider.name": provider, "gen_ai.system": provider,
        "gen_ai.request.model": model,
    }
    for name, value in (("temperature", request.temperature), ("max_tokens", request.token_limit),
                        ("top_p", request.top_p)):
        if value is not None:
            attributes[f"gen_ai.request.{name}"] = value
    span = tracing.start_span(f"{OPERATION} {model}", tracing.SpanKind.CLIENT, attributes)
    try:
        yield span
    except ProviderError as exc:
        tracing.error(span, exc.kind)
        raise
    except (asyncio.CancelledError, GeneratorExit):  # the caller stopped waiting (a stream's consumer left)
        tracing.error(span, "cancelled")
        raise
    except BaseException as exc:
        tracing.error(span, type(exc).__name__)
        raise
    finally:
        span.end()


def traced(request: ChatRequest, span: tracing.Span) -> ChatRequest:
    """`request` with the W3C headers naming `span` as the parent of the upstream call."""
    headers = tracing.headers_for(span)
    if not headers:
        return request
    return replace(request, extra_headers={**request.extra_headers, **headers})


def record_result(span: tracing.Span, result: ChatResult | StreamChunk) -> None:
    """The answer's model, finish reason and token counts (a stream: its last chunk's)."""
    if not span.is_recording():
        return
    span.set_attributes({
        "gen_ai.response.finish_reasons": [result.finish_reason or "stop"],
        "gen_ai.usage.input_tokens": result.prompt_tokens, "gen_ai.usage.output_tokens": result.completion_tokens,
    })
    if result.model:
        span.set_attribute("gen_ai.response.model", result.model)
