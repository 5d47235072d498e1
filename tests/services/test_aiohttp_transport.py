"""httpx2 over aiohttp (services/aiohttp_transport.py): what goes over the socket, and which httpx2
error each misbehaving server ends as. The servers are raw asyncio scripts on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Awaitable, Callable

import aiohttp
import httpx2
import pytest

from services.aiohttp_transport import AiohttpTransport, _mapped
from tests.server_thread import free_port

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request; a chunked body is de-chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"transfer-encoding") == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size + 2)
            body = body[:-2]
        await reader.readuntil(b"\r\n")
        return head, body
    return head, await reader.readexactly(int(fields.get(b"content-length", b"0")))


def answer(payload: dict, extra: bytes = b"") -> bytes:
    body = json.dumps(payload).encode()
    return (b"HTTP/1.1 200 Fine Thanks\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
            % (extra, len(body), body))


@pytest.fixture
async def serve():
    """serve(script) → base URL; script(reader, writer, connection_number) runs per connection."""
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> str:
        count = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            count += 1
            try:
                await script(reader, writer, count)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def echo_forever(reader, writer, number):
    while True:
        head, body = await read_request(reader)
        writer.write(answer({"connection": number, "body": body.decode(), "head": head.decode()},
                            b"x-many: 1\r\nx-many: 2\r\n"))
        await writer.drain()


async def test_calls_reuse_one_connection_and_carry_bodies_headers_and_status(serve):
    url = await serve(echo_forever)
    async with httpx2.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
        answers = [await client.post("/x", json={"i": i}, headers={"x-mine": "yes"}) for i in range(3)]
    assert [a.json()["connection"] for a in answers] == [1, 1, 1]
    assert [json.loads(a.json()["body"]) for a in answers] == [{"i": 0}, {"i": 1}, {"i": 2}]
    head = answers[0].json()["head"].lower()
    assert head.startswith("post /x http/1.1") and "x-mine: yes" in head and "content-type: application/json" in head
    assert answers[0].status_code == 200 and answers[0].reason_phrase == "Fine Thanks"
    assert answers[0].headers.get_list("x-many") == ["1", "2"]


async def test_a_streamed_request_body_arrives_whole(serve):
    url = await serve(echo_forever)

    async def pieces():
        for piece in (b"one ", b"two ", b"three"):
            yield piece

    async with httpx2.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
        response = await client.post("/x", content=pieces())
    assert response.json()["body"] == "one two three"


async def test_a_streamed_answer_comes_piece_by_piece_and_an_unfinished_one_is_not_reused(serve):
    go_on = asyncio.Event()

    async def stream_or_echo(reader, writer, number):
        while True:
            head, _ = await read_request(reader)
            if not head.startswith(b"GET /s "):
                writer.write(answer({"connection": number}))
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            await go_on.wait()
            writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
            await writer.drain()

    url = await serve(stream_or_echo)
    async with httpx2.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
        async with client.stream("GET", "/s") as response:
            pieces = response.aiter_bytes()
            assert await anext(pieces) == b"first"  # before the server sends the rest: no buffering
            go_on.set()
            assert b"".join([p async for p in pieces]) == b"second"
        assert (await client.get("/again")).json()["connection"] == 1, "a stream read to its end is reused"
        go_on.clear()
        async with client.stream("GET", "/s") as response:
            assert await anext(response.aiter_bytes()) == b"first"
        go_on.set()  # closed before its end: that connection is dropped, the next call opens another
        assert (await client.get("/after")).json()["connection"] == 2


async def test_a_refused_connection_is_a_connect_error():
    async with httpx2.AsyncClient(transport=AiohttpTransport()) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/x")


async def test_a_server_that_never_answers_is_a_read_timeout(serve):
    async def hang(reader, writer, number):
        await read_request(reader)
        await asyncio.Event().wait()

    url = await serve(hang)
    async with httpx2.AsyncClient(base_url=url, transport=AiohttpTransport(), timeout=0.3) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get("/x")


async def test_a_stalled_stream_is_a_read_timeout_between_pieces(serve):
    async def stall(reader, writer, number):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.Event().wait()

    url = await serve(stall)
    async with httpx2.AsyncClient(base_url=url, transport=AiohttpTransport(), timeout=0.3) as client:
        async with client.stream("GET", "/x") as response:
            pieces = response.aiter_bytes()
            assert await anext(pieces) == b"first"
            with pytest.raises(httpx2.ReadTimeout):
                await anext(pieces)


@pytest.mark.parametrize("reply", [
    b"",  # hangs up without answering
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",  # hangs up mid-body
    b"this is not HTTP at all\r\n\r\n",
], ids=["no-answer", "truncated", "garbage"])
async def test_a_broken_answer_is_a_protocol_error(serve, reply):
    async def broken(reader, writer, number):
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    url = await serve(broken)
    async with httpx2.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get("/x")


@pytest.mark.parametrize(("error", "expected"), [
    (aiohttp.ConnectionTimeoutError("slow connect"), httpx2.ConnectTimeout),
    (aiohttp.SocketTimeoutError("slow read"), httpx2.ReadTimeout),
    (aiohttp.ServerTimeoutError("slow"), httpx2.ReadTimeout),
    (aiohttp.ClientConnectorError(aiohttp.client_reqrep.ConnectionKey(
        "h", 1, False, True, None, None, None), OSError(111, "refused")), httpx2.ConnectError),
    (aiohttp.ServerDisconnectedError(), httpx2.RemoteProtocolError),
    (aiohttp.ClientPayloadError("bad chunk"), httpx2.RemoteProtocolError),
    (aiohttp.ClientOSError(104, "reset"), httpx2.ReadError),
    (aiohttp.InvalidURL("nope://x"), httpx2.UnsupportedProtocol),
    (aiohttp.ClientError("other"), httpx2.TransportError),
])
def test_each_aiohttp_error_maps_to_the_httpx2_error_httpcore_would_raise(error, expected):
    mapped = _mapped(error)
    assert type(mapped) is expected and str(mapped)


async def test_aclose_closes_the_pool_and_a_later_call_opens_a_new_one(serve):
    url = await serve(echo_forever)
    made = AiohttpTransport()
    async with httpx2.AsyncClient(base_url=url, transport=made) as client:
        assert (await client.get("/x")).json()["connection"] == 1
        session = made._session
        await made.aclose()
        assert session is not None and session.closed
        assert (await client.get("/x")).json()["connection"] == 2
