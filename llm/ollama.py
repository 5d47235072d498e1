"""Ollama through the official `ollama` client: one long-lived AsyncClient per provider.

OpenAI's request vocabulary is mapped to Ollama's fields by llm/ollama_mapping.py (sampling in
`options`, never top-level; tools, format, tool turns); what cannot be mapped is refused there.
The client has no per-call headers, so X-Request-ID rides on a ContextVar read by an httpx hook.
"""

from __future__ import annotations

import asyncio
import ssl
from contextvars import ContextVar
from typing import Any, AsyncIterator

import httpx
import ollama
from httpx_aiohttp import AiohttpTransport

from llm import http
from llm import ollama_mapping as mapping
from llm.fidelity import UnsupportedParameter
from llm.types import ChatRequest, ChatResult, ModelNotFound, ProviderError, StreamChunk, status_error
from observability import tracing

_upstream_headers: ContextVar[dict[str, str]] = ContextVar("ollama_upstream_headers", default={})


async def _add_headers(request: httpx.Request) -> None:
    for key, value in _upstream_headers.get().items():
        request.headers[key] = value


def _finish(done_reason: str | None, called_tools: bool) -> str:
    if called_tools:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def _map_error(exc: Exception, model: str) -> ProviderError:
    if isinstance(exc, ollama.ResponseError):
        message = str(exc.error)
        if exc.status_code == -1:  # an {"error": ...} line inside a 200 stream
            return ProviderError(f"ollama error: {message}", provider="ollama", kind="error")
        if "not found" in message.lower() and "model" in message.lower():
            return ModelNotFound(message, provider="ollama", model=model)
        return status_error("ollama", exc.status_code, f"ollama answered {exc.status_code}: {message}", model)
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)) and not http.refused(exc):
        return ProviderError("ollama timed out", provider="ollama", kind="timeout")
    if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.TimeoutException)):
        return ProviderError(f"cannot connect to ollama: {exc}", provider="ollama", kind="connect")
    if isinstance(exc, httpx.HTTPError):
        return ProviderError(f"ollama transport error: {exc!r}", provider="ollama", kind="error")
    if isinstance(exc, (ValueError, TypeError, AttributeError, KeyError)):  # bad JSON / wrong shape
        return ProviderError(f"unparseable answer from ollama: {exc!r}"[:500], provider="ollama",
                             kind="garbage")
    return ProviderError(f"ollama call failed: {exc!r}", provider="ollama")


class OllamaProvider:
    name = "ollama"

    def __init__(self, url: str, model: str = "llama3.2", timeout: float = 30.0, *,
                 verify: bool | str | ssl.SSLContext = True, connect_timeout: float = 5.0,
                 health_timeout: float = 3.0, api_key: str | None = None,
                 follow_redirects: bool = True) -> None:
        """`api_key`: sent as `Authorization: Bearer` (an Ollama behind an authenticating proxy);
        `follow_redirects=False` for a community's endpoint (a redirect could lead anywhere)."""
        self.url = url.rstrip("/")
        self.default_model = model
        self.timeout = timeout
        self.health_timeout = health_timeout
        if isinstance(verify, str):  # a CA bundle path (httpx deprecates verify=<str>)
            verify = ssl.create_default_context(cafile=verify)
        self._client = ollama.AsyncClient(
            host=self.url, transport=AiohttpTransport(verify=verify),  # llm/http.py
            event_hooks={"request": [_add_headers]},
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            follow_redirects=follow_redirects,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> "OllamaProvider":
        verify: bool | str = bool(settings.ollama_verify_ssl)
        if verify and settings.ollama_cert_path:
            verify = settings.ollama_cert_path
        return cls(settings.ollama_url, settings.ollama_model, settings.request_timeout, verify=verify)

    def unsupported(self, request: ChatRequest) -> UnsupportedParameter | None:
        try:
            mapping.chat_kwargs(request, request.model or self.default_model)
        except UnsupportedParameter as exc:
            return exc
        return None

    async def chat(self, request: ChatRequest) -> ChatResult:
        model = request.model or self.default_model
        kwargs = mapping.chat_kwargs(request, model)  # raises UnsupportedParameter before any call
        token = _upstream_headers.set(request.upstream_headers())
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.chat(**kwargs, stream=False)
            calls = mapping.tool_calls(response.message.tool_calls)
            return ChatResult(
                text=response.message.content or "", model=response.model or model, provider=self.name,
                prompt_tokens=response.prompt_eval_count or 0, completion_tokens=response.eval_count or 0,
                finish_reason=_finish(response.done_reason, bool(calls)), tool_calls=calls,
                logprobs=mapping.logprobs(response.logprobs), message_extra=mapping.thinking(response.message),
            )
        except Exception as exc:
            raise _map_error(exc, model) from exc
        finally:
            _upstream_headers.reset(token)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Yield chunks as Ollama sends them; close with `aclose()` when stopping early."""
        model = request.model or self.default_model
        kwargs = mapping.chat_kwargs(request, model)  # raises UnsupportedParameter before any call
        parts: Any = None
        token = _upstream_headers.set(request.upstream_headers())
        try:  # connect and wait for the first line under the overall timeout
            async with asyncio.timeout(self.timeout):
                parts = await self._client.chat(**kwargs, stream=True)
                part = await anext(parts, None)
        except BaseException as exc:
            if parts is not None:
                await parts.aclose()
            if isinstance(exc, Exception):
                raise _map_error(exc, model) from exc
            raise
        finally:
            _upstream_headers.reset(token)
        calls = 0  # tool calls so far: Ollama sends each whole, in one line; deltas are indexed by it
        try:
            while part is not None:
                text = part.message.content or ""
                deltas = mapping.tool_calls(part.message.tool_calls, first_index=calls)
                calls += len(deltas or ())
                logprobs = mapping.logprobs(part.logprobs)
                thinking = mapping.thinking(part.message)
                if part.done:
                    yield StreamChunk(
                        text=text, model=part.model or model, finish_reason=_finish(part.done_reason, calls > 0),
                        prompt_tokens=part.prompt_eval_count or 0, completion_tokens=part.eval_count or 0,
                        tool_calls=deltas, logprobs=logprobs, delta_extra=thinking)
                    return
                if text or deltas or logprobs or thinking:
                    yield StreamChunk(text=text, model=part.model or model, tool_calls=deltas, logprobs=logprobs,
                                      delta_extra=thinking)
                try:
                    part = await anext(parts, None)
                except Exception as exc:
                    raise _map_error(exc, model) from exc
            raise ProviderError("ollama stream ended before done", provider=self.name, kind="garbage")
        finally:
            await parts.aclose()

    async def list_models(self) -> list[str]:
        # the trace of the request that asked for the listing (nothing when tracing is off)
        token = _upstream_headers.set(tracing.carrier() or {})
        try:
            async with asyncio.timeout(self.timeout):
                listing = await self._client.list()
            return [m.model for m in listing.models if m.model]
        except Exception as exc:
            raise _map_error(exc, self.default_model) from exc
        finally:
            _upstream_headers.reset(token)

    async def health(self) -> bool:
        try:
            async with asyncio.timeout(self.health_timeout):
                await self._client.list()
            return True
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._client.close()
