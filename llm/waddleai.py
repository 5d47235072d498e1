"""WaddleAI (an OpenAI-compatible proxy) through the official `openai` SDK's typed API.

One long-lived `AsyncOpenAI` client on the SDK's aiohttp client (llm/http.py); its retries are off
(`max_retries=0`): the service owns retries and the breaker. `base_url` is the proxy root
(`/healthz` lives there); the API is under `<root>/v1`. Calls are `chat.completions.create()` with
its typed parameters, streamed ones too, through the SDK's documented raw-response option
(`with_raw_response`): the answer is `parse(to=dict)`, the stream `parse(to=AsyncStream[object])`
(the SDK still reads the SSE, raises on an in-band error event and maps HTTP errors). This module
reads the JSON objects the proxy sent, instead of having the SDK build a typed object for every
answer and chunk that would only be dumped back to JSON for the caller: that construction and dump
cost 37–46 % of the CPU of a relayed chunk (BENCHMARKS.md, "Changes measured against 288b3c9").
Without WADDLEAI_API_KEY no Authorization header is sent.

Real proxies differ (docs/design.md "Real OpenAI-compatible proxies"): WADDLEAI_EXTRA_HEADERS go
on every call (chat, stream, model listing, health), e.g. Portkey's `x-portkey-provider`; health is
`<root>/healthz`, or `<root>/v1/models` where that route is missing (LiteLLM, Portkey, vLLM); and
`_map_error` reads the upstream's own words so "no such model" is ModelNotFound in any status and
a refusal of our credentials or headers is ProviderMisconfigured (llm/types.py `status_error`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Mapping

import httpx2
import openai

from llm.http import refused
from llm.types import ChatRequest, ChatResult, ProviderError, StreamChunk, status_error
from observability import tracing
from observability.logs import get_logger

log = get_logger(__name__)

NAME = "waddleai"
# Sent as given when set (None: not asked for), and so are ChatRequest.extra_params and the messages
# (roles, developer included, name, tool_calls, tool_call_id, function_call, refusal, audio).
PASSED_THROUGH = ("temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed",
                  "frequency_penalty", "presence_penalty", "tools", "tool_choice", "parallel_tool_calls",
                  "response_format", "logprobs", "top_logprobs")
# The answer's fields this module reads itself; the others are relayed as sent (ChatResult.*_extra).
MESSAGE_CORE = frozenset({"role", "content", "tool_calls"})
COMPLETION_CORE = frozenset({"id", "object", "created", "model", "choices", "usage", "obfuscation"})
# Streamed chunks as the JSON objects the proxy sent: the SDK reads the SSE and raises on an in-band
# error event, but builds no typed object per chunk (llm/waddleai.py module note)
UntypedChunks = openai.AsyncStream[object]
NO_KEY = "no-key"  # the SDK wants a key; with it, the Authorization header is dropped per call
HEALTHZ, MODELS = "/healthz", "/v1/models"  # health routes: the first, else (404) the second


def _upstream_words(exc: openai.APIStatusError) -> str:
    """The upstream's own explanation: the SDK's message ("Error code: 400 - <message>"), or, when
    its body has no `message` (Portkey-like or FastAPI `{"detail": …}` bodies), the body itself."""
    words = exc.message
    if words.strip() == f"Error code: {exc.status_code}" and exc.body:
        body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)
        words = f"{words} - {body[:500]}"
    return words


def _map_error(exc: Exception, model: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return status_error(NAME, exc.status_code, f"waddleai answered {exc.status_code}: {_upstream_words(exc)}",
                            model, code=exc.code)
    if isinstance(exc, (openai.APITimeoutError, TimeoutError, httpx2.TimeoutException)) and not refused(exc):
        return ProviderError("waddleai timed out", provider=NAME, kind="timeout")
    # httpx2.TransportError: the connection broke while a stream was being read (the SDK does not wrap it)
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError, TimeoutError)):
        return ProviderError(f"cannot connect to waddleai: {exc!r}", provider=NAME, kind="connect")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(f"unparseable answer from waddleai: {exc}", provider=NAME, kind="garbage")
    if isinstance(exc, openai.APIError):
        return ProviderError(f"waddleai error: {exc.message}", provider=NAME, kind="error")
    if isinstance(exc, (ValueError, TypeError, AttributeError, KeyError, IndexError)):
        return ProviderError(f"unparseable answer from waddleai: {exc!r}"[:500], provider=NAME, kind="garbage")
    return ProviderError(f"waddleai call failed: {exc!r}", provider=NAME)


def _text(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    raise TypeError(f"content is {type(value).__name__}, not a string")


def _object(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise TypeError(f"{what} is {type(value).__name__}, not an object")


def _objects(value: Any, what: str) -> list[dict[str, Any]] | None:
    """A list of JSON objects as the proxy sent it (None when missing or empty)."""
    if not value:
        return None
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise TypeError(f"{what} is not a list of objects")


def _optional_object(value: Any, what: str) -> dict[str, Any] | None:
    return None if value is None else _object(value, what)


def _extra(item: dict[str, Any] | None, core: frozenset[str]) -> dict[str, Any] | None:
    """The non-null fields of an answer's object beyond `core`, as the upstream sent them (its own too)."""
    if not item:
        return None
    return {k: v for k, v in item.items() if k not in core and v is not None} or None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _tokens(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _first_choice(answer: dict[str, Any]) -> dict[str, Any] | None:
    choices = answer.get("choices")
    if not choices:
        return None
    if not isinstance(choices, list):
        raise TypeError("choices is not a list")
    return _object(choices[0], "choices[0]")


class WaddleAIProvider:
    name = NAME

    def __init__(self, base_url: str, model: str = "auto", timeout: float = 30.0, *,
                 api_key: str | None = None, preferred_model: str | None = None,
                 extra_headers: Mapping[str, str] | None = None,
                 connect_timeout: float = 5.0, health_timeout: float = 3.0,
                 follow_redirects: bool = True) -> None:
        root = base_url.rstrip("/")
        self.root = root[:-3] if root.endswith("/v1") else root
        self.default_model = model
        self.timeout = timeout
        self.health_timeout = health_timeout
        self.health_path = HEALTHZ  # MODELS once /healthz answered 404: later probes go there at once
        # WADDLEAI_EXTRA_HEADERS ride on every call as client default headers (values never logged);
        # one of them may be the Authorization itself (it then replaces WADDLEAI_API_KEY's)
        extra = dict(extra_headers or {})
        headers = {**({"X-Preferred-Model": preferred_model} if preferred_model else {}), **extra}
        own_auth = api_key or any(name.lower() == "authorization" for name in extra)
        self._auth: dict[str, Any] = {} if own_auth else {"Authorization": openai.Omit()}
        http_timeout = openai.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._client = openai.AsyncOpenAI(
            base_url=f"{self.root}/v1", api_key=api_key or NO_KEY, max_retries=0, timeout=http_timeout,
            default_headers=headers,
            http_client=openai.DefaultAioHttpClient(timeout=http_timeout, follow_redirects=follow_redirects),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> "WaddleAIProvider":
        key = settings.waddleai_api_key
        return cls(settings.waddleai_base_url, settings.waddleai_model, settings.request_timeout,
                   api_key=key.get_secret_value() if key is not None else None,
                   preferred_model=settings.waddleai_preferred_model,
                   extra_headers={name: value.get_secret_value()
                                  for name, value in settings.waddleai_extra_headers.items()})

    def _params(self, request: ChatRequest, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model, "messages": request.messages,
                                  "extra_headers": {**request.upstream_headers(), **self._auth}}
        for name in PASSED_THROUGH:
            value = getattr(request, name)
            if value is not None:
                params[name] = value
        params.update(request.extra_params)  # each one a typed parameter of the SDK (tests/llm/test_waddleai.py)
        return params

    def unsupported(self, request: ChatRequest) -> ProviderError | None:
        return None  # everything goes to the proxy as given; what it refuses comes back as its 4xx

    async def chat(self, request: ChatRequest) -> ChatResult:
        model = request.model or self.default_model
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self._client.chat.completions.with_raw_response.create(**self._params(request, model))
            answer = _object(raw.parse(to=dict), "the answer")
            choice = _first_choice(answer)
            if choice is None:
                raise IndexError("the answer has no choices")
            message = _object(choice.get("message"), "choices[0].message")
            prompt, completion = _tokens(answer.get("usage"))
            return ChatResult(
                text=_text(message.get("content")), model=answer.get("model") or model, provider=NAME,
                prompt_tokens=prompt, completion_tokens=completion,
                finish_reason=choice.get("finish_reason") or "stop",
                tool_calls=_objects(message.get("tool_calls"), "tool_calls"),
                logprobs=_optional_object(choice.get("logprobs"), "logprobs"),
                message_extra=_extra(message, MESSAGE_CORE), completion_extra=_extra(answer, COMPLETION_CORE),
            )
        except Exception as exc:
            raise _map_error(exc, model) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as the proxy sends them; close with `aclose()` when stopping early."""
        model = request.model or self.default_model
        try:  # connect and get the response head under the overall timeout
            async with asyncio.timeout(self.timeout):
                raw = await self._client.chat.completions.with_raw_response.create(
                    **self._params(request, model), stream=True, stream_options={"include_usage": True})
            chunks = raw.parse(to=UntypedChunks)
        except Exception as exc:
            raise _map_error(exc, model) from exc
        finish: str | None = None
        answered_model, prompt, completion = model, 0, 0
        try:
            while True:
                try:
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    chunk = _object(chunk, "a chunk")
                    answered_model = chunk.get("model") or answered_model
                    if chunk.get("usage"):
                        prompt, completion = _tokens(chunk["usage"])
                    choice = _first_choice(chunk)
                    delta = _optional_object(choice.get("delta"), "delta") if choice else None
                    piece = StreamChunk(text=_text(delta.get("content")) if delta else "", model=answered_model,
                                        tool_calls=_objects(delta.get("tool_calls"), "tool_calls") if delta else None,
                                        logprobs=_optional_object(choice.get("logprobs"), "logprobs") if choice else None,
                                        delta_extra=_extra(delta, MESSAGE_CORE),
                                        chunk_extra=_extra(chunk, COMPLETION_CORE))
                    finish = (choice.get("finish_reason") if choice else None) or finish
                except Exception as exc:
                    raise _map_error(exc, model) from exc
                if piece.has_output:
                    yield piece
            if finish is None:
                raise ProviderError("waddleai stream ended without finish_reason", provider=self.name,
                                    kind="garbage")
            yield StreamChunk(model=answered_model, finish_reason=finish, prompt_tokens=prompt,
                              completion_tokens=completion)
        finally:
            await chunks.close()

    async def list_models(self) -> list[str]:
        try:
            async with asyncio.timeout(self.timeout):
                # the trace of the request that asked for the listing (nothing when tracing is off)
                page = await self._client.models.list(extra_headers={**(tracing.carrier() or {}), **self._auth})
            return [m.id for m in page.data]
        except Exception as exc:
            raise _map_error(exc, self.default_model) from exc

    async def health(self) -> bool:
        """GET <root>/healthz through the SDK's own HTTP client (any 2xx is healthy); where that
        answers 404 (LiteLLM, Portkey, vLLM have no such route), GET <root>/v1/models instead, from
        then on (the route is remembered, so later probes do not hit the 404 first)."""
        try:
            async with asyncio.timeout(self.health_timeout):
                try:
                    await self._probe(self.health_path)
                except openai.NotFoundError:
                    if self.health_path != HEALTHZ:
                        raise
                    self.health_path = MODELS
                    log.info("waddleai has no /healthz: its health is probed on /v1/models",
                             action="provider_health", provider=NAME)
                    await self._probe(self.health_path)
            return True
        except Exception:
            return False

    async def _probe(self, path: str) -> None:
        await self._client.get(f"{self.root}{path}", cast_to=httpx2.Response,
                               options={"timeout": self.health_timeout, "headers": self._auth})

    async def aclose(self) -> None:
        await self._client.close()
