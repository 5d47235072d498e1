"""WaddleAI (an OpenAI-compatible proxy) through the official `openai` SDK: one long-lived client.

The SDK's own retries are off (`max_retries=0`): the service owns retries and the breaker.
`base_url` is the proxy root (`/healthz` lives there); the API is under `<root>/v1`.

Chat calls go through the SDK's lower-level `client.post(<root>/v1/chat/completions, body=…,
cast_to=httpx2.Response)`: same client, auth, headers, timeouts and status-error mapping
as `chat.completions.create()`, without its typed-params transform and response models (≈ 1 ms of
CPU per call); the JSON answer and the SSE stream are read here. The SDK's HTTP client (httpx2)
sends through aiohttp (services/aiohttp_transport.py) instead of httpcore2/h11, unless proxy
environment variables are set (that transport has no proxy support; the SDK's own one has).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from contextlib import aclosing
from typing import Any, AsyncIterator

import httpx2
import openai

from providers import sse
from providers.base import ChatRequest, ChatResult, ModelNotFound, ProviderError, StreamChunk
from services.aiohttp_transport import AiohttpTransport2

NAME = "waddleai"
DRAIN_TIMEOUT_S = 0.1  # after [DONE], as the SDK's own streams do


def _status_error(status: int, message: str, model: str) -> ProviderError:
    """404 → ModelNotFound; 408/429/5xx count for the breaker; other 4xx are the request's fault."""
    if status == 404:
        return ModelNotFound(f"model {model!r} not found: {message}", provider=NAME, model=model)
    if 400 <= status < 500 and status not in (408, 429):
        return ProviderError(message, provider=NAME, status=status, counts_for_breaker=False, kind="request")
    return ProviderError(message, provider=NAME, status=status, kind="bad_status")


def _map_error(exc: Exception, model: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc.status_code, f"waddleai answered {exc.status_code}: {exc.message}", model)
    if isinstance(exc, (openai.APITimeoutError, TimeoutError, httpx2.TimeoutException)):
        return ProviderError("waddleai timed out", provider=NAME, kind="timeout")
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):  # the latter: mid-stream
        return ProviderError(f"cannot connect to waddleai: {exc!r}", provider=NAME, kind="connect")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(f"unparseable answer from waddleai: {exc}", provider=NAME, kind="garbage")
    if isinstance(exc, openai.APIError):
        return ProviderError(f"waddleai error: {exc.message}", provider=NAME, kind="error")
    if isinstance(exc, (ValueError, TypeError, AttributeError, KeyError, IndexError)):
        return ProviderError(f"unparseable answer from waddleai: {exc!r}"[:500], provider=NAME, kind="garbage")
    return ProviderError(f"waddleai call failed: {exc!r}", provider=NAME)


def _tokens(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    raise TypeError(f"content is {type(value).__name__}, not a string")


def _completion(data: Any, model: str) -> ChatResult:
    """A `chat.completion` object → ChatResult; raises TypeError/KeyError/IndexError on a bad shape."""
    choice = data["choices"][0]
    usage = data.get("usage")
    return ChatResult(
        text=_text(choice["message"].get("content")), model=data.get("model") or model, provider=NAME,
        prompt_tokens=_tokens(usage, "prompt_tokens"), completion_tokens=_tokens(usage, "completion_tokens"),
        finish_reason=choice.get("finish_reason") or "stop",
    )


def _event_object(data: str) -> dict[str, Any]:
    """One `chat.completion.chunk` event; an in-band `{"error": …}` event raises (as the SDK's streams do)."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise TypeError(f"stream event is {type(value).__name__}, not an object")
    error = value.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        raise ProviderError(f"waddleai error: {message or 'An error occurred during streaming'}",
                            provider=NAME, kind="error")
    return value


async def _drain(events: AsyncIterator[sse.Event]) -> None:
    """Read what follows `[DONE]` (the end of the chunked body, normally already here) so the
    connection goes back to the pool; give up after DRAIN_TIMEOUT_S (the connection is then closed)."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in events:
                pass
    except (TimeoutError, httpx2.TransportError):
        pass


def _transport() -> AiohttpTransport2 | None:
    """The SDK client's transport: ours, or None (the SDK's own, which honours them) when proxy
    environment variables are set."""
    if any(key in ("http", "https", "all") for key in urllib.request.getproxies()):
        return None
    return AiohttpTransport2(limits=openai.DEFAULT_CONNECTION_LIMITS)


class WaddleAIProvider:
    name = NAME

    def __init__(self, base_url: str, model: str = "auto", timeout: float = 30.0, *,
                 api_key: str | None = None, preferred_model: str | None = None,
                 connect_timeout: float = 5.0, health_timeout: float = 3.0) -> None:
        root = base_url.rstrip("/")
        self.root = root[:-3] if root.endswith("/v1") else root
        self.default_model = model
        self.timeout = timeout
        self.health_timeout = health_timeout
        headers = {"X-Preferred-Model": preferred_model} if preferred_model else {}
        # No key: send no Authorization header (the SDK only accepts that as a per-call Omit).
        self._auth: dict[str, Any] = {} if api_key else {"Authorization": openai.Omit()}
        http_timeout = httpx2.Timeout(timeout, connect=min(connect_timeout, timeout))
        self.transport = _transport()
        http_client = None if self.transport is None else openai.DefaultAsyncHttpxClient(
            timeout=http_timeout, transport=self.transport)
        self._chat_url = f"{self.root}/v1/chat/completions"  # absolute: the SDK skips a URL merge
        self._client = openai.AsyncOpenAI(
            base_url=f"{self.root}/v1", api_key=api_key or "", max_retries=0, timeout=http_timeout,
            default_headers=headers, http_client=http_client, _enforce_credentials=False,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> "WaddleAIProvider":
        key = settings.waddleai_api_key
        return cls(settings.waddleai_base_url, settings.waddleai_model, settings.request_timeout,
                   api_key=key.get_secret_value() if key is not None else None,
                   preferred_model=settings.waddleai_preferred_model)

    def _body(self, request: ChatRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": request.messages}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop is not None:
            body["stop"] = request.stop
        return body

    def _options(self, request: ChatRequest) -> dict[str, Any]:
        headers = {**request.upstream_headers(), **self._auth}
        return {"headers": headers} if headers else {}

    async def chat(self, request: ChatRequest) -> ChatResult:
        model = request.model or self.default_model
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(
                    self._chat_url, body=self._body(request, model), cast_to=httpx2.Response,
                    options=self._options(request))
            return _completion(json.loads(response.content), model)
        except Exception as exc:
            raise _map_error(exc, model) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as the proxy sends them; close with `aclose()` when stopping early."""
        model = request.model or self.default_model
        body = {**self._body(request, model), "stream": True, "stream_options": {"include_usage": True}}
        try:  # connect and get the response head under the overall timeout
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(
                    self._chat_url, body=body, cast_to=httpx2.Response, stream=True,
                    options=self._options(request))
        except Exception as exc:
            raise _map_error(exc, model) from exc
        finish: str | None = None
        answered_model, prompt, completion = model, 0, 0
        try:
            async with aclosing(sse.events(response.aiter_bytes())) as events:
                while True:
                    try:
                        event = await anext(events, None)
                        if event is None:
                            break
                        if event.data.startswith("[DONE]"):
                            await _drain(events)
                            break
                        data = _event_object(event.data)
                        answered_model = data.get("model") or answered_model
                        usage = data.get("usage")
                        if usage:
                            prompt, completion = _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens")
                        choices = data.get("choices")
                        choice = choices[0] if choices else None
                        text = _text((choice.get("delta") or {}).get("content")) if choice else ""
                        finish = (choice.get("finish_reason") if choice else None) or finish
                    except Exception as exc:
                        raise _map_error(exc, model) from exc
                    if text:
                        yield StreamChunk(text=text, model=answered_model)
            if finish is None:
                raise ProviderError("waddleai stream ended without finish_reason", provider=self.name,
                                    kind="garbage")
            yield StreamChunk(model=answered_model, finish_reason=finish, prompt_tokens=prompt,
                              completion_tokens=completion)
        finally:
            await response.aclose()

    async def list_models(self) -> list[str]:
        try:
            async with asyncio.timeout(self.timeout):
                page = await self._client.models.list(extra_headers=self._auth)
            return [m.id for m in page.data]
        except Exception as exc:
            raise _map_error(exc, self.default_model) from exc

    async def health(self) -> bool:
        """GET <root>/healthz through the SDK's own HTTP client."""
        try:
            async with asyncio.timeout(self.health_timeout):
                await self._client.get(f"{self.root}/healthz", cast_to=httpx2.Response,
                                       options={"timeout": self.health_timeout, "headers": self._auth})
            return True
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._client.close()
