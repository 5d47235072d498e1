"""An `httpx2` transport on aiohttp: the `openai` SDK's HTTP client, with aiohttp's parser and pool.

The SDK (≥ 3) sends through httpx2 → httpcore2 → h11, all pure Python: one chat call costs the
client 1.2–1.4 ms of CPU on the bench machines, more than the whole 1.5 ms budget of the OpenAI
endpoint (`python -m bench.sdk_floor`). httpx2 lets the transport be swapped; this one hands the
request to an `aiohttp.ClientSession` (C HTTP parser, its own keep-alive pool) and gives httpx2 the
answer back, so the SDK — request building, auth, status errors, timeouts — is unchanged.

The SDK ships the same idea (`openai.DefaultAioHttpClient`, a vendored httpx-aiohttp), but that
adapter reports a refused connection and a server hanging up mid-answer as a *timeout*
(`ConnectTimeout`); this one maps aiohttp's errors to the httpx2 exception httpcore2 would raise:

- cannot connect (refused, DNS, TLS) → ConnectError; connect or pool wait too long → ConnectTimeout;
- no byte for `read` seconds → ReadTimeout;
- disconnected, truncated or malformed answer → RemoteProtocolError; reset → ReadError;
- a bad URL → UnsupportedProtocol; anything else of aiohttp's → TransportError.

Timeouts come from the request (`httpx2.Timeout`): connect → aiohttp `sock_connect`, pool → `connect`
(waiting for a pooled connection included), read → `sock_read` (per read, as in httpx); aiohttp has
no write timeout. Limits: `max_connections` caps the pool; idle connections are closed after
`keepalive_expiry` (aiohttp has no separate cap on idle connections). No cookies are kept here
(httpx2 owns cookies), no decompression (httpx2 decodes), no redirects (httpx2 follows them).
Proxies are not supported: callers keep the SDK's own transport when proxy variables are set.
"""

from __future__ import annotations

import ssl
from typing import Any, AsyncIterator

import aiohttp
import httpx2

DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)


def _mapped(exc: aiohttp.ClientError) -> httpx2.TransportError:
    """The httpx2 exception for an aiohttp one (the most specific classes first)."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx2.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx2.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx2.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx2.ConnectError
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                          aiohttp.ClientResponseError)):
        kind = httpx2.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientOSError):
        kind = httpx2.ReadError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx2.UnsupportedProtocol
    else:
        kind = httpx2.TransportError
    return kind(message)


class _Body(httpx2.AsyncByteStream):
    """The answer's body as httpx2 reads it; closing an unfinished body drops its connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()  # read to its end: the connection goes back to the pool
        else:
            response.close()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: httpx2.Limits | None = None) -> None:
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx2.create_ssl_context(verify=verify)
        self._limits = limits or DEFAULT_LIMITS
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        """Made at the first request, inside the event loop the session then belongs to."""
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0, limit_per_host=0, ssl=self._ssl,
            keepalive_timeout=self._limits.keepalive_expiry or 0)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open_session()
        timeout = request.extensions.get("timeout", {})
        try:
            body: Any = request.content or None
        except httpx2.RequestNotRead:  # a streamed body: aiohttp sends it chunked
            body = request.stream
        headers = [(k, v) for k, v in request.headers.multi_items() if k != "transfer-encoding"]
        try:
            response = await session.request(
                request.method, str(request.url), headers=headers, data=body, allow_redirects=False,
                compress=False, server_hostname=request.extensions.get("sni_hostname"),
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"),
                                              sock_connect=timeout.get("connect"),
                                              sock_read=timeout.get("read")))
        except aiohttp.ClientError as exc:
            raise _mapped(exc) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx2.Response(response.status, headers=response.raw_headers, stream=_Body(response),
                               request=request, extensions=extensions)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
