"""The one small interface every LLM backend implements, and the errors it raises.

Providers translate between our neutral request/result types and one backend's wire protocol.
They do not retry, do not know about the circuit breaker, and never swallow a failure: a failed
call raises `ProviderError` (or a subclass) so the caller can count it, fail over or fall back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

from observability.logs import request_id_var


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call. `messages` are OpenAI-style dicts: {"role": ..., "content": str}."""

    messages: list[dict[str, str]]
    model: str | None = None  # None → the provider's configured default model
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    request_id: str | None = None  # sent upstream as X-Request-ID
    extra_headers: dict[str, str] = field(default_factory=dict)

    def upstream_headers(self) -> dict[str, str]:
        """Headers for the provider: the extra ones and X-Request-ID (this call's, else the bound one)."""
        rid = self.request_id or request_id_var.get()
        return {**self.extra_headers, **({"X-Request-ID": rid} if rid else {})}


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    model: str  # the model that really answered, as the provider reports it
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # OpenAI vocabulary: stop | length | content_filter | tool_calls


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed answer. The last chunk has `finish_reason` set and token counts."""

    text: str = ""
    model: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ProviderError(Exception):
    """The provider failed. `counts_for_breaker` is False when the request itself was bad (4xx)."""

    def __init__(
        self, message: str, *, provider: str, status: int | None = None,
        counts_for_breaker: bool = True, kind: str = "error",
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.counts_for_breaker = counts_for_breaker
        self.kind = kind  # error | timeout | connect | bad_status | garbage | request | not_found


class ModelNotFound(ProviderError):
    def __init__(self, message: str, *, provider: str, model: str) -> None:
        super().__init__(message, provider=provider, status=404, counts_for_breaker=False, kind="not_found")
        self.model = model


class ProviderUnavailable(ProviderError):
    """Raised without touching the backend: its breaker is open (or no provider is usable)."""

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message, provider=provider, counts_for_breaker=False, kind="unavailable")


def status_error(provider: str, status: int, message: str, model: str) -> ProviderError:
    """An upstream's error status: 404 → ModelNotFound; 408/429/5xx count for the breaker; other 4xx
    are the request's fault."""
    if status == 404:
        return ModelNotFound(f"model {model!r} not found: {message}", provider=provider, model=model)
    if 400 <= status < 500 and status not in (408, 429):
        return ProviderError(message, provider=provider, status=status, counts_for_breaker=False,
                             kind="request")
    return ProviderError(message, provider=provider, status=status, kind="bad_status")


class Provider(Protocol):
    name: str  # "ollama" | "waddleai"
    default_model: str

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as the backend produces them (never buffered to the end)."""
        ...

    async def list_models(self) -> list[str]: ...

    async def health(self) -> bool:
        """One cheap probe of the backend; True when it answers. Never raises."""
        ...

    async def aclose(self) -> None: ...
