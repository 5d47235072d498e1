"""The one small interface every LLM backend implements, and the errors it raises.

Providers translate between our neutral request/result types and one backend's wire protocol.
They do not retry, do not know about the circuit breaker, and never swallow a failure: a failed
call raises `ProviderError` (or a subclass) so the caller can count it, fail over or fall back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from observability.logs import request_id_var


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call, in OpenAI's vocabulary (each provider maps it to its own wire format).

    `messages` are OpenAI-style dicts: {"role", "content"}, and where the caller gave them `name`,
    an assistant turn's `tool_calls` ([{id, type, function: {name, arguments}}]), a tool turn's
    `tool_call_id`. `tools`, `tool_choice`, `response_format` are OpenAI's JSON shapes, as given.
    The interaction path sets only messages, model and sampling; None means "not asked for".
    """

    messages: list[dict[str, Any]]
    model: str | None = None  # None → the provider's configured default model
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None  # OpenAI's current name; a provider sends what was given
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    request_id: str | None = None  # sent upstream as X-Request-ID
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def token_limit(self) -> int | None:
        """`max_completion_tokens` (current name) wins over `max_tokens` (deprecated name)."""
        return self.max_completion_tokens or self.max_tokens

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
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI's [{id, type, function: {name, arguments}}]
    logprobs: dict[str, Any] | None = None  # OpenAI's choice.logprobs: {"content": [...], ...}


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed answer. The last chunk has `finish_reason` set and token counts.

    `tool_calls` are OpenAI's delta shape, [{index, id?, type?, function: {name?, arguments?}}], as
    produced (a provider that sends whole calls sends each once, with its id and all its arguments)."""

    text: str = ""
    model: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: dict[str, Any] | None = None  # OpenAI's choice.logprobs of this piece

    @property
    def has_output(self) -> bool:
        return bool(self.text or self.tool_calls or self.logprobs)


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

    def unsupported(self, request: ChatRequest) -> ProviderError | None:
        """The error for the first thing in `request` this provider cannot honour (an
        `llm.fidelity.UnsupportedParameter`), else None. Checked before any call."""
        ...

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as the backend produces them (never buffered to the end)."""
        ...

    async def list_models(self) -> list[str]: ...

    async def health(self) -> bool:
        """One cheap probe of the backend; True when it answers. Never raises."""
        ...

    async def aclose(self) -> None: ...
