"""httpx responses freed by reference counting, not by the cyclic garbage collector.

httpx 0.28 binds every response to its body stream both ways (`Response.stream` is a
`BoundAsyncStream` that refers back to the `Response`, to set `elapsed` when the body closes). That
cycle kept each upstream call's response, request, headers and pool objects (~40 objects, measured
with gc.DEBUG_SAVEALL) alive until the cyclic collector ran; with replies completing, those
collections came every few seconds and each paused the event loop for milliseconds (BENCHMARKS.md).

`AcyclicTransport` hands httpx the body stream wrapped in `UnbindingStream`, which refers to the
response weakly. When the body is closed (after httpx has recorded `elapsed`), the response's
stream is replaced by that wrapper, so nothing refers back and the whole call is freed as soon as
the caller drops the response. A response whose body is never closed keeps httpx's cycle (as before).
httpx2 (under the `openai` SDK) has no such cycle and is left as it is.
"""

from __future__ import annotations

import typing
import weakref

import httpx


class UnbindingStream(httpx.AsyncByteStream):
    __slots__ = ("_stream", "_response")

    def __init__(self, stream: httpx.AsyncByteStream, response: httpx.Response) -> None:
        self._stream = stream
        self._response = weakref.ref(response)

    def __aiter__(self) -> typing.AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        await self._stream.aclose()
        response = self._response()
        if response is not None:
            response.stream = self  # was httpx's BoundAsyncStream, which refers back to the response


class AcyclicTransport(httpx.AsyncHTTPTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        response.stream = UnbindingStream(response.stream, response)  # type: ignore[arg-type]
        return response
