"""The one small interface every LLM backend implements, and the errors it raises.

Providers translate between our neutral request/result types and one backend's wire protocol.
They do not retry, do not know about the circuit breaker, and never swallow a failure: a failed
call raises `ProviderError` (or a subclass) so the caller can count it, fail over or fall back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from observability.logs import request_id_var


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call, in OpenAI's vocabulary (each provider maps it to its own wire format).

    `messages` are OpenAI-style dicts: {"role", "content"} (role as given: `developer` and
    `function` too; content a string, null, or a list of text parts), and where the caller gave them `name`, an assistant turn's `tool_calls`
    ([{id, type, function: {name, arguments}}]), `function_call`, `refusal`, `audio`, a tool turn's
    `tool_call_id`. `tools`, `tool_choice`, `response_format` are OpenAI's JSON shapes, as given.
    `extra_params` holds OpenAI's other parameters the caller set (`reasoning_effort`, `logit_bias`,
    `functions`, …, web/openai_models.py PASSED_ON), by name, as given: a provider sends them on or
    refuses them by name (`unsupported`), never drops one.
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
    extra_params: dict[str, Any] = field(default_factory=dict)
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
    # the answer's other non-null fields, as the upstream sent them: the message's (refusal,
    # function_call, audio, annotations, reasoning_content, …) and the completion's (service_tier,
    # system_fingerprint, …)
    message_extra: dict[str, Any] | None = None
    completion_extra: dict[str, Any] | None = None


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
    # the delta's other non-null fields (function_call, refusal, reasoning_content, …) and the
    # chunk's (service_tier, system_fingerprint, …), as the upstream sent them
    delta_extra: dict[str, Any] | None = None
    chunk_extra: dict[str, Any] | None = None

    @property
    def has_output(self) -> bool:
        return bool(self.text or self.tool_calls or self.logprobs or self.delta_extra)


ENDPOINT, MODEL = "endpoint", "model"  # what a failure concerns: the whole endpoint, or one model of it


class ProviderError(Exception):
    """The provider failed. `counts_for_breaker` is False when the request itself was bad (4xx).

    `scope` says what a counted failure concerns: `endpoint` (connection, timeout, 5xx: the
    provider's breaker) or `model` (that model's quota or rate limit: a breaker of that model only,
    llm/breaker.py ModelBreakers), so one model's failures never close the provider to the others."""

    def __init__(
        self, message: str, *, provider: str, status: int | None = None,
        counts_for_breaker: bool = True, kind: str = "error", scope: str = ENDPOINT,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.counts_for_breaker = counts_for_breaker
        # error | timeout | connect | bad_status | garbage | request | not_found | misconfigured | unavailable
        self.kind = kind
        self.scope = scope


class ModelNotFound(ProviderError):
    def __init__(self, message: str, *, provider: str, model: str) -> None:
        super().__init__(message, provider=provider, status=404, counts_for_breaker=False, kind="not_found",
                         scope=MODEL)
        self.model = model


class ProviderMisconfigured(ProviderError):
    """The upstream rejected OUR side of the call: our credentials (401/403) or our headers (a
    Portkey-style 400 about a missing provider header), or it does not serve the API at our URL
    (a bare 404). The operator must fix the configuration; never the caller's fault (HTTP 502)."""

    def __init__(self, message: str, *, provider: str, status: int, scope: str = ENDPOINT) -> None:
        super().__init__(message, provider=provider, status=status, kind="misconfigured", scope=scope)


class ProviderUnavailable(ProviderError):
    """Raised without touching the backend: its breaker is open (or no provider is usable).
    With `model` set, only that model's breaker is open (model-scoped failures)."""

    def __init__(self, message: str, *, provider: str, model: str | None = None) -> None:
        super().__init__(message, provider=provider, counts_for_breaker=False, kind="unavailable",
                         scope=MODEL if model else ENDPOINT)
        self.model = model


# "no such model", as real upstreams say it in any status: LiteLLM (400 "Invalid model name passed
# in model=x"), OpenAI (404 "The model `x` does not exist…", code model_not_found), vLLM (404 "The
# model `x` does not exist."), Ollama (404 "model 'x' not found"), OpenRouter ("x is not a valid model ID").
_NO_SUCH_MODEL = re.compile(
    r"invalid model name|model[_ ]not[_ ]found|no such model|unknown model|not a valid model"
    r"|\bmodel\b[^.\n]{0,200}?\b(?:does not exist|not found)",
    re.IGNORECASE,
)
# A 4xx about what WE send besides the request (the caller's headers never go upstream): Portkey's
# gateway answers 400 {"status": "failure", "message": "Either x-portkey-config or x-portkey-provider
# header is required"} (also "Invalid provider passed", "Invalid config passed", "Invalid custom host"
# for its headers); a LiteLLM proxy without a database answers a key other than its master key with
# 400 "No connected db." (with one, 401).
_OUR_SETUP = re.compile(
    r"\bheaders?\b|\bx-portkey-|invalid (?:provider|config) passed|invalid custom host|no connected db",
    re.IGNORECASE)
_MENTIONS_MODEL = re.compile(r"\bmodels?\b", re.IGNORECASE)


def says_no_such_model(message: str, code: str | None = None) -> bool:
    return code == "model_not_found" or bool(_NO_SUCH_MODEL.search(message))


def status_error(provider: str, status: int, message: str, model: str, code: str | None = None,
                 ) -> ProviderError:
    """An upstream's error status (`message` carries the upstream's own words, `code` its error code):

    - "no such model" in any status, or a 404 that names a model → ModelNotFound (404 to callers);
    - 401/403, a 4xx about our headers or key, or a bare 404 (no API at our URL) → ProviderMisconfigured
      (502), counted for the breaker (model-scoped when the refusal names a model: a key without
      access to that model);
    - 429 (a model's quota or rate limit) → counted, model-scoped;
    - 408 and 5xx → counted, endpoint-scoped; any other 4xx is the request's fault (not counted).
    """
    if says_no_such_model(message, code) or (status == 404 and _MENTIONS_MODEL.search(message)):
        return ModelNotFound(f"model {model!r} not found: {message}", provider=provider, model=model)
    if status in (401, 403, 404) or (400 <= status < 500 and status not in (408, 429)
                                     and _OUR_SETUP.search(message)):
        scope = MODEL if status in (401, 403) and _MENTIONS_MODEL.search(message) else ENDPOINT
        return ProviderMisconfigured(message, provider=provider, status=status, scope=scope)
    if status == 429:
        return ProviderError(message, provider=provider, status=status, kind="bad_status", scope=MODEL)
    if 400 <= status < 500 and status != 408:
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
