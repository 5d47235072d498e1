"""OpenAI-compatible chat completions on top of LLMService: model routing and response bodies.

Model rule (`plan`), for the `model` a client sends:
1. `<provider>/<name>` where `<provider>` is a configured provider (`ollama`, `waddleai`): that
   provider only, with model `<name>`; no failover (the client chose).
2. Missing or empty, or equal to a configured provider's default model (OLLAMA_MODEL,
   WADDLEAI_MODEL): that provider's default model (the primary's when missing), failing over to
   the other provider's default model, as the interaction path does.
3. Any other name: the primary provider with that name, then the fallback with the same name
   (failover as above). A provider's "model not found" ends as 404 `model_not_found`.
Failover happens only before any output; the response names the model that really answered.

Completions never run triggers, never read or write the chat context, never clean or prefix replies.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from providers.base import ChatRequest, ChatResult
from services.llm import Attempt, LLMService

FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls"})
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
    """A validated completion request, in the provider-neutral vocabulary."""

    messages: list[dict[str, str]]
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    stream: bool = False
    include_usage: bool = False
    request_id: str | None = None


def plan(llm: LLMService, given: CompletionInput) -> list[Attempt]:
    """The (provider, request) attempts for this completion, in order (see the module rule)."""
    def request(model: str | None) -> ChatRequest:
        return ChatRequest(messages=given.messages, model=model, temperature=given.temperature,
                           max_tokens=given.max_tokens, top_p=given.top_p, stop=given.stop,
                           request_id=given.request_id)

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
    """The OpenAI `chat.completion` object, not wrapped."""
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": result.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.text, "refusal": None},
            "logprobs": None, "finish_reason": finish_reason(result.finish_reason),
        }],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
        "system_fingerprint": None,
    }


async def complete(llm: LLMService, given: CompletionInput,
                   spent: list[float] | None = None) -> tuple[dict[str, Any], ChatResult]:
    """Answer a non-streamed completion; `spent` collects the seconds spent inside provider calls."""
    result = await llm.complete_first(plan(llm, given), spent)
    return completion_body(result, new_completion_id(), int(time.time())), result
