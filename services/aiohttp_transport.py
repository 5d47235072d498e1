"""httpx and httpx2 transports on aiohttp: the upstream clients, with aiohttp's parser and pool.

The official clients send through httpx (`ollama`, and our router client) or httpx2 (`openai` ≥ 3),
both on httpcore → h11, pure Python: an upstream call cost the client 0.75–0.8 ms of CPU with
httpx and 1.1–1.4 ms through the SDK on the bench machine, most of the service's CPU per reply
(`python -m bench.sdk_floor`, BENCHMARKS.md). httpx lets the transport be swapped; these hand the
request to an `aiohttp.ClientSession` (C HTTP parser, its own keep-alive pool) and give the answer
back as an httpx (httpx2) response, so the clients above — request building, auth, status errors,
timeouts, event hooks, proxies from the environment (httpx mounts its own transports for them) —
are unchanged. Measured: 0.52–0.56 ms per httpx call, 0.78–0.85 ms per SDK call.

The SDK ships the same idea (`openai.DefaultAioHttpClient`, a vendored httpx-aiohttp), but that
adapter reports a refused connection and a server hanging up mid-answer as a *timeout*
(`ConnectTimeout`); here aiohttp's errors become the exception httpcore would have raised:

- cannot connect (refused, DNS, TLS) → ConnectError; connect or pool wait too long → ConnectTimeout;
- no byte for `read` seconds → ReadTimeout;
- disconnected, truncated or malformed answer → RemoteProtocolError; reset → ReadError;
- a bad URL → UnsupportedProtocol; anything else of aiohttp's → TransportError.

Timeouts come from the request (`Timeout`): connect → aiohttp `sock_connect`, pool → `connect`
(waiting for a pooled connection included), read → `sock_read` (per read, as in httpx); aiohttp has
no write timeout. Limits: `max_connections` caps the pool; idle connections are closed after
`keepalive_expiry` (aiohttp has no separate cap on idle connections). No cookies are kept here
(the client owns cookies), no decompression (the client decodes), no redirects (it follows them).

When a response head arrives the call takes its loop turn (services/loop_turns.py). With httpx, a
response whose body has been closed is unbound from it: httpx 0.28 wraps the body in a stream that
refers back to the response (to set `elapsed`), a cycle that left ~40 objects per call to the
cyclic collector, whose collections then paused the loop for milliseconds. httpx2 keeps `elapsed`
on its wrapper instead, with no cycle, and is left as it is.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from typing import Any, AsyncIterator

import aiohttp
import httpx
import httpx2

from services.loop_turns import turns_of

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _mapped(exc: aiohttp.ClientError, http: Any) -> Exception:
    """The httpx (httpx2) exception for an aiohttp one, the most specific classes first."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return http.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return http.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return http.ConnectError(message)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return http.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientOSError):
        return http.ReadError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return http.UnsupportedProtocol(message)
    return http.TransportError(message)


class _Body:
    """The answer's body as the client reads it; closing an unfinished body drops its connection.

    `http`: the client's module (httpx or httpx2); `unbind`: undo that client's response cycle."""

    http: Any = httpx2
    unbind = False

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer
        self._response: weakref.ref[Any] | None = None  # the client's response, once made

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _mapped(exc, self.http) from exc

    async def aclose(self) -> None:
        answer = self._answer
        if answer.content.at_eof():
            answer.release()  # read to its end: the connection goes back to the pool
        else:
            answer.close()
        response = self._response() if self._response is not None else None
        if response is not None:
            response.stream = self  # was the client's wrapper, which refers back to the response


class _Body1(_Body, httpx.AsyncByteStream):
    http = httpx
    unbind = True  # httpx 0.28's body wrapper refers back to the response


class _Body2(_Body, httpx2.AsyncByteStream):
    http = httpx2


class _Transport:
    body: type[_Body] = _Body2  # and with it the client's module

    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: Any = None) -> None:
        http = self.body.http
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else http.create_ssl_context(verify=verify)
        self._limits = limits or DEFAULT_LIMITS
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        """Made at the first request, inside the event loop the session then belongs to."""
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0, limit_per_host=0, ssl=self._ssl,
            keepalive_timeout=self._limits.keepalive_expiry)  # None, as in httpx: never expire
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))

    async def handle_async_request(self, request: Any) -> Any:
        http = self.body.http
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open_session()
        timeout = request.extensions.get("timeout", {})
        try:
            data: Any = request.content or None
        except http.RequestNotRead:  # a streamed body: aiohttp sends it chunked
            data = request.stream
        headers = [(k, v) for k, v in request.headers.multi_items() if k != "transfer-encoding"]
        try:
            answer = await session.request(
                request.method, str(request.url), headers=headers, data=data, allow_redirects=False,
                compress=False, server_hostname=request.extensions.get("sni_hostname"),
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"),
                                              sock_connect=timeout.get("connect"), sock_read=timeout.get("read")))
        except aiohttp.ClientError as exc:
            raise _mapped(exc, http) from exc
        try:
            await turns_of(asyncio.get_running_loop()).take()
        except BaseException:
            answer.close()
            raise
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode("latin-1", "replace")
        body = self.body(answer)
        response = http.Response(answer.status, headers=answer.raw_headers, stream=body, request=request,
                                 extensions=extensions)
        if body.unbind:
            body._response = weakref.ref(response)
        return response

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class AiohttpTransport(_Transport, httpx.AsyncBaseTransport):
    """For httpx (the Ollama and router clients)."""

    body = _Body1


class AiohttpTransport2(_Transport, httpx2.AsyncBaseTransport):
    """For httpx2 (what `openai.AsyncOpenAI(http_client=…)` sends through)."""

    body = _Body2
