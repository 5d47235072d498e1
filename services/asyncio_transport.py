"""An httpx transport whose connections are plain asyncio protocols instead of anyio streams.

httpx → httpcore → anyio → asyncio costs about half of every upstream call's CPU on this service's
loop (the profiles in BENCHMARKS.md: anyio's per-call cancel scopes, `extra_attributes` dictionaries
built on every `get_extra_info`, a `select` per pooled connection reuse). httpcore lets the network
layer be swapped (`AsyncNetworkBackend`); this one is a small `asyncio.Protocol` with a byte buffer,
so a read is "take what arrived, or wait for it", the pieces of a request go out in one send, and "is the idle connection readable?" is a check
of that buffer. Everything else — HTTP/1.1 framing, pooling, keep-alive, TLS verification, the
timeouts of `httpx.Timeout` — stays httpcore's and httpx's.

`transport(...)` builds an `httpx.AsyncHTTPTransport` and gives its connection pool this backend;
the stream raises httpcore's exceptions, so httpx maps them to its own as usual. (The `openai` SDK
sends through httpx2 instead: services/aiohttp_transport.py.)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import typing
import weakref
from collections import deque

import httpcore
import httpx

from services.unbound_responses import AcyclicTransport

_Timeout = typing.Optional[float]
_FLUSH_AT = 64 * 1024  # a larger request body is sent as it comes, with write flow control


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes in a buffer, a waiter for the reader, write flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.outgoing = bytearray()  # written by httpcore, sent at the next read or past _FLUSH_AT
        self._eof = False
        self._error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self._eof = True
        self._error = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    @property
    def readable(self) -> bool:
        """Data or EOF waiting: for an idle pooled connection this means the server closed it."""
        return bool(self._buffer) or self._eof


class _Turns:
    """Upstream answers resume one per event-loop turn, in arrival order.

    Ten LLM answers arriving together would otherwise each run their whole continuation (parse the
    answer, build and send the router post: ~2 ms of CPU) in one loop turn, and an ACK arriving
    meanwhile waits for all of them. With turns, a read that had to wait for data goes on at once if
    no other did in this turn, else waits for its own turn, so the loop polls sockets (and serves
    ACKs) between two answers. Reads of data already buffered do not take a turn.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._taken = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        if not self._taken:
            self._taken = True
            self._loop.call_soon(self._next)  # runs next turn, after this turn's callbacks
            return
        turn = self._loop.create_future()
        self._waiting.append(turn)
        await turn

    def _next(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a cancelled waiter gives its turn away
                turn.set_result(None)
                self._loop.call_soon(self._next)
                return
        self._taken = False


_turns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns]" = weakref.WeakKeyDictionary()


def _turns_of(loop: asyncio.AbstractEventLoop) -> _Turns:
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = _Turns(loop)
    return turns


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's stream interface."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    async def read(self, max_bytes: int, timeout: _Timeout = None) -> bytes:
        conn = self._conn
        if conn.outgoing:
            self._send()
        if not conn._buffer and not conn._eof:
            loop = asyncio.get_running_loop()
            conn._reader = loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await conn._reader
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out reading from the upstream") from None
            finally:
                conn._reader = None
            await _turns_of(loop).take()
        if not conn._buffer:
            if conn._error is not None:
                raise httpcore.ReadError(str(conn._error) or repr(conn._error))
            return b""
        data = bytes(conn._buffer[:max_bytes])
        del conn._buffer[:max_bytes]
        return data

    def _send(self) -> None:
        conn = self._conn
        if conn.transport is None or conn.transport.is_closing():
            conn.outgoing.clear()
            raise httpcore.WriteError("connection closed")
        conn.transport.write(bytes(conn.outgoing))
        conn.outgoing.clear()

    async def write(self, buffer: bytes, timeout: _Timeout = None) -> None:
        """Collect the request's pieces (head, body) so that a request is one send, not three."""
        conn = self._conn
        if conn.transport is None or conn.transport.is_closing():
            raise httpcore.WriteError("connection closed")
        conn.outgoing += buffer
        if len(conn.outgoing) < _FLUSH_AT:
            return
        self._send()
        if conn._writable is not None and not conn._writable.done():
            try:
                async with asyncio.timeout(timeout):
                    await conn._writable
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out writing to the upstream") from None

    async def aclose(self) -> None:
        if self._conn.transport is not None:
            self._conn.transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: _Timeout = None) -> httpcore.AsyncNetworkStream:
        conn = self._conn
        assert conn.transport is not None
        try:
            async with asyncio.timeout(timeout):
                tls = await asyncio.get_running_loop().start_tls(
                    conn.transport, conn, ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            conn.transport.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            conn.transport.close()
            raise httpcore.ConnectError(str(exc) or repr(exc)) from exc
        conn.transport = typing.cast(asyncio.Transport, tls)
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        transport = self._conn.transport
        if info == "is_readable":
            return self._conn.readable
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.connects = 0  # connections opened (pooled reuse shows as not growing)

    async def connect_tcp(self, host: str, port: int, timeout: _Timeout = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        conn = _Connection()
        self.connects += 1
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn, host, port,
                    local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or repr(exc)) from exc
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return _Stream(conn)

    async def connect_unix_socket(self, path: str, timeout: _Timeout = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        conn = _Connection()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().create_unix_connection(lambda: conn, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {path}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or repr(exc)) from exc
        return _Stream(conn)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def transport(*, verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None,
              retries: int = 0) -> httpx.AsyncHTTPTransport:
    """For `httpx` (the Ollama and router clients): an `httpx.AsyncHTTPTransport` (TLS settings,
    limits, HTTP/1.1) whose pool uses AsyncioBackend, and whose responses have no reference cycle.

    httpx builds the pool (and its SSL context); only the network layer is swapped (pinned httpx
    0.28: `_pool` and its `_ssl_context` are private there)."""
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    made = AcyclicTransport(verify=verify, limits=limits, retries=retries)
    backend = AsyncioBackend()
    made._pool = httpcore.AsyncConnectionPool(
        ssl_context=made._pool._ssl_context, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False, retries=retries,
        network_backend=backend)
    made.backend = backend  # type: ignore[attr-defined]  # connections opened: `made.backend.connects`
    return made
