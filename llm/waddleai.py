"""WaddleAI (an OpenAI-compatible proxy) through the official `openai` SDK's typed API.

One long-lived `AsyncOpenAI` client on the SDK's aiohttp client (llm/http.py); its retries are off
(`max_retries=0`): the service owns retries and the breaker. `base_url` is the proxy root
(`/healthz` lives there); the API is under `<root>/v1`. Calls are `chat.completions.create()`,
streamed ones too (`stream=True` gives the SDK's `AsyncStream` of typed chunks; it reads the SSE
and raises on an in-band error event). Without WADDLEAI_API_KEY no Authorization header is sent.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import httpx2
import openai

from llm.http import refused
from llm.types import ChatRequest, ChatResult, ProviderError, StreamChunk, status_error

NAME = "waddleai"
# Sent as given when set (None: not asked for); the messages go as given too (name, tool_calls, tool_call_id).
PASSED_THROUGH = ("temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed",
                  "frequency_penalty", "presence_penalty", "tools", "tool_choice", "parallel_tool_calls",
                  "response_format", "logprobs", "top_logprobs")
NO_KEY = "no-key"  # the SDK wants a key; with it, the Authorization header is dropped per call


def _map_error(exc: Exception, model: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return status_error(NAME, exc.status_code, f"waddleai answered {exc.status_code}: {exc.message}", model)
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


def _dumped(items: Any) -> list[dict[str, Any]] | None:
    """The SDK's typed objects back as the JSON the proxy sent (fields it did not send left out)."""
    return [item.model_dump(mode="json", exclude_unset=True) for item in items] if items else None


def _logprobs(value: Any) -> dict[str, Any] | None:
    return value.model_dump(mode="json", exclude_unset=True) if value is not None else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class WaddleAIProvider:
    name = NAME

    def __init__(self, base_url: str, model: str = "auto", timeout: float = 30.0, *,
                 api_key: str | None = None, preferred_model: str | None = None,
                 connect_timeout: float = 5.0, health_timeout: float = 3.0,
                 follow_redirects: bool = True) -> None:
        root = base_url.rstrip("/")
        self.root = root[:-3] if root.endswith("/v1") else root
        self.default_model = model
        self.timeout = timeout
        self.health_timeout = health_timeout
        headers = {"X-Preferred-Model": preferred_model} if preferred_model else {}
        self._auth: dict[str, Any] = {} if api_key else {"Authorization": openai.Omit()}
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
                   preferred_model=settings.waddleai_preferred_model)

    def _params(self, request: ChatRequest, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model, "messages": request.messages,
                                  "extra_headers": {**request.upstream_headers(), **self._auth}}
        for name in PASSED_THROUGH:
            value = getattr(request, name)
            if value is not None:
                params[name] = value
        return params

    def unsupported(self, request: ChatRequest) -> ProviderError | None:
        return None  # everything goes to the proxy as given; what it refuses comes back as its 4xx

    async def chat(self, request: ChatRequest) -> ChatResult:
        model = request.model or self.default_model
        try:
            async with asyncio.timeout(self.timeout):
                completion = await self._client.chat.completions.create(**self._params(request, model))
            choice = completion.choices[0]
            usage = completion.usage
            return ChatResult(
                text=_text(choice.message.content), model=completion.model or model, provider=NAME,
                prompt_tokens=_count(usage.prompt_tokens) if usage else 0,
                completion_tokens=_count(usage.completion_tokens) if usage else 0,
                finish_reason=choice.finish_reason or "stop",
                tool_calls=_dumped(choice.message.tool_calls), logprobs=_logprobs(choice.logprobs),
            )
        except Exception as exc:
            raise _map_error(exc, model) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as the proxy sends them; close with `aclose()` when stopping early."""
        model = request.model or self.default_model
        try:  # connect and get the response head under the overall timeout
            async with asyncio.timeout(self.timeout):
                chunks = await self._client.chat.completions.create(
                    **self._params(request, model), stream=True, stream_options={"include_usage": True})
        except Exception as exc:
            raise _map_error(exc, model) from exc
        finish: str | None = None
        answered_model, prompt, completion = model, 0, 0
        try:
            iterator = chunks.__aiter__()
            while True:
                try:
                    chunk = await anext(iterator, None)
                    if chunk is None:
                        break
                    answered_model = chunk.model or answered_model
                    if chunk.usage:
                        prompt = _count(chunk.usage.prompt_tokens)
                        completion = _count(chunk.usage.completion_tokens)
                    choice = chunk.choices[0] if chunk.choices else None
                    delta = choice.delta if choice else None
                    piece = StreamChunk(text=_text(delta.content) if delta else "", model=answered_model,
                                        tool_calls=_dumped(delta.tool_calls) if delta else None,
                                        logprobs=_logprobs(choice.logprobs) if choice else None)
                    finish = (choice.finish_reason if choice else None) or finish
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
                page = await self._client.models.list(extra_headers=self._auth)
            return [m.id for m in page.data]
        except Exception as exc:
            raise _map_error(exc, self.default_model) from exc

    async def health(self) -> bool:
        """GET <root>/healthz through the SDK's own HTTP client (any 2xx is healthy)."""
        try:
            async with asyncio.timeout(self.health_timeout):
                await self._client.get(f"{self.root}/healthz", cast_to=httpx2.Response,
                                       options={"timeout": self.health_timeout, "headers": self._auth})
            return True
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._client.close()
