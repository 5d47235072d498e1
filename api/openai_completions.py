"""One chat completion request: parse, route through LLMService, answer as JSON or as SSE.

Streams wait for the provider's first chunk before answering, so a provider that fails before
producing anything is an HTTP error (OpenAI error object, 404/503/…); later failures go in-band
(services/completion_stream.py). The response timeout is switched off for streams.
Each completion is logged once: key (a hash), user (a hash), provider, model, result, tokens.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from quart import Response, current_app, g

from api.openai_errors import from_validation, in_band
from api.openai_models import ChatCompletionRequest
from providers.base import ProviderError, StreamChunk
from services import completions
from services.completion_stream import StreamFrame, StreamOutcome, open_stream, sse_events
from services.completions import CompletionInput, encode_json, new_completion_id
from services.llm import LLMService
from services.logs import get_logger, hash_user

log = get_logger(__name__)


def parse(body: bytes) -> ChatCompletionRequest:
    limits = {"max_messages": current_app.extensions["settings"].max_completion_messages}
    try:
        return ChatCompletionRequest.model_validate_json(body or b"", context=limits)
    except ValidationError as exc:
        raise from_validation(exc) from None


def to_input(req: ChatCompletionRequest) -> CompletionInput:
    return CompletionInput(
        messages=[m.for_provider() for m in req.messages], model=req.model, temperature=req.temperature,
        max_tokens=req.token_limit, top_p=req.top_p, stop=req.stop, stream=bool(req.stream),
        include_usage=req.include_usage, request_id=getattr(g, "request_id", None))


async def answer(llm: LLMService, body: bytes) -> Response:
    req = parse(body)
    given = to_input(req)
    fields = {"key": getattr(g, "openai_key", None), "user": hash_user(req.user) if req.user else None,
              "stream": given.stream, "requested_model": given.model, "started": time.perf_counter()}
    if given.stream:
        return await _stream(llm, given, fields)
    return await _complete(llm, given, fields)


async def _complete(llm: LLMService, given: CompletionInput, fields: dict[str, Any]) -> Response:
    spent: list[float] = []
    try:
        body, result = await completions.complete(llm, given, spent)
    except ProviderError as exc:
        _log(fields, exc.kind, provider=exc.provider)
        raise
    finally:
        g.openai_provider_s = sum(spent)
    _log(fields, "success", provider=result.provider, model=result.model,
         prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    await _usage().record(None, result.provider, result.model, result.prompt_tokens, result.completion_tokens)
    return Response(encode_json(body), status=200, content_type="application/json")


async def _stream(llm: LLMService, given: CompletionInput, fields: dict[str, Any]) -> Response:
    outcome = StreamOutcome()
    try:
        first, chunks = await open_stream(llm, given, outcome)
    except ProviderError as exc:
        _log(fields, exc.kind, provider=exc.provider)
        raise
    finally:
        g.openai_provider_s = outcome.stats.provider_wait_s
    frame = StreamFrame(new_completion_id(), int(time.time()), first.model or given.model or "",
                        given.include_usage)

    def on_end(done: StreamOutcome) -> None:
        _log(fields, done.result, provider=done.stats.provider, model=frame.model,
             prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)

    usage = _usage()

    async def record_usage(final: StreamChunk) -> None:
        await usage.record(None, outcome.stats.provider or "unknown", final.model or frame.model,
                           final.prompt_tokens, final.completion_tokens)

    response = Response(sse_events(frame, first, chunks, outcome, in_band, on_end, record_usage),
                        status=200, content_type="text/event-stream; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # no proxy buffering either
    response.timeout = None  # never cut a long stream, whatever RESPONSE_TIMEOUT says
    return response


def _usage() -> Any:
    """Token usage sink (community 0: the OpenAI API has no community)."""
    return current_app.extensions["runtime"].usage


def _log(fields: dict[str, Any], result: str, **extra: Any) -> None:
    elapsed_ms = round((time.perf_counter() - fields["started"]) * 1000, 2)
    level = log.info if result in ("success", "cancelled") else log.warning
    level("openai completion", action="openai_completion", result=result, execution_time_ms=elapsed_ms,
          **{k: v for k, v in fields.items() if k != "started"}, **extra)
