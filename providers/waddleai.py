"""WaddleAI (an OpenAI-compatible proxy) through the official `openai` SDK: one long-lived client.

The SDK's own retries are off (`max_retries=0`): the service owns retries and the breaker.
`base_url` is the proxy root (`/healthz` lives there); the API is under `<root>/v1`.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import httpx2
import openai

from providers.base import ChatRequest, ChatResult, ModelNotFound, ProviderError, StreamChunk
from services.logs import request_id_var

NAME = "waddleai"


def _status_error(status: int, message: str, model: str) -> ProviderError:
    """404 → ModelNotFound; 408/429/5xx count for the breaker; other 4xx are the request's fault."""
    if status == 404:
        return ModelNotFound(f"model {model!r} not found: {message}", provider=NAME, model=model)
    if 400 <= status < 500 and status not in (408, 429):
        return ProviderError(message, provider=NAME, status=status, counts_for_breaker=False, kind="request")
    return ProviderError(message, provider=NAME, status=status, kind="bad_status")


def _map_error(exc: Exception, model: str) -> ProviderError:
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc.status_code, f"waddleai answered {exc.status_code}: {exc.message}", model)
    if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
        return ProviderError("waddleai timed out", provider=NAME, kind="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"cannot connect to waddleai: {exc!r}", provider=NAME, kind="connect")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(f"unparseable answer from waddleai: {exc}", provider=NAME, kind="garbage")
    if isinstance(exc, openai.APIError):  # e.g. an in-band {"error": ...} event mid-stream
        return ProviderError(f"waddleai error: {exc.message}", provider=NAME, kind="error")
    if isinstance(exc, (ValueError, TypeError, AttributeError, KeyError, IndexError)):
        return ProviderError(f"unparseable answer from waddleai: {exc!r}"[:500], provider=NAME, kind="garbage")
    return ProviderError(f"waddleai call failed: {exc!r}", provider=NAME)


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
        self._client = openai.AsyncOpenAI(
            base_url=f"{self.root}/v1", api_key=api_key or "", max_retries=0,
            timeout=httpx2.Timeout(timeout, connect=min(connect_timeout, timeout)),
            default_headers=headers, _enforce_credentials=False,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> "WaddleAIProvider":
        key = settings.waddleai_api_key
        return cls(settings.waddleai_base_url, settings.waddleai_model, settings.request_timeout,
                   api_key=key.get_secret_value() if key is not None else None,
                   preferred_model=settings.waddleai_preferred_model)

    def _params(self, request: ChatRequest, model: str) -> dict[str, Any]:
        rid = request.request_id or request_id_var.get()
        params: dict[str, Any] = {
            "model": model, "messages": request.messages,
            "extra_headers": {**request.extra_headers, **({"X-Request-ID": rid} if rid else {}), **self._auth},
        }
        for key in ("temperature", "max_tokens", "top_p", "stop"):
            if getattr(request, key) is not None:
                params[key] = getattr(request, key)
        return params

    async def chat(self, request: ChatRequest) -> ChatResult:
        model = request.model or self.default_model
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.chat.completions.create(**self._params(request, model))
            choice = response.choices[0]
            usage = response.usage
            return ChatResult(
                text=choice.message.content or "", model=response.model or model, provider=self.name,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                finish_reason=choice.finish_reason or "stop",
            )
        except Exception as exc:
            raise _map_error(exc, model) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as the proxy sends them; close with `aclose()` when stopping early."""
        model = request.model or self.default_model
        params = {**self._params(request, model), "stream": True, "stream_options": {"include_usage": True}}
        try:  # connect and wait for the first event under the overall timeout
            async with asyncio.timeout(self.timeout):
                events = await self._client.chat.completions.create(**params)
        except Exception as exc:
            raise _map_error(exc, model) from exc
        finish: str | None = None
        answered_model, prompt, completion = model, 0, 0
        try:
            while True:
                try:
                    event = await anext(events, None)
                    if event is None:
                        break
                    answered_model = event.model or answered_model
                    if event.usage is not None:
                        prompt, completion = event.usage.prompt_tokens, event.usage.completion_tokens
                    choice = event.choices[0] if event.choices else None
                    text = (choice.delta.content or "") if choice else ""
                    finish = (choice.finish_reason if choice else None) or finish
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
            await events.close()

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
