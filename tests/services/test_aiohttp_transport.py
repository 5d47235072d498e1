"""httpx and httpx2 over aiohttp (services/aiohttp_transport.py): what goes over the socket, and which
error each misbehaving server ends as. The servers are raw asyncio scripts on loopback; every test
runs with both flavours (`http` is the httpx or httpx2 module, `made()` a transport for it)."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import json
import ssl
from typing import Awaitable, Callable

import aiohttp
import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.aiohttp_transport import AiohttpTransport, AiohttpTransport2, _mapped
from tests.server_thread import free_port
from tests.waiting import async_wait_until

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


@pytest.fixture(params=["httpx", "httpx2"])
def flavour(request):
    return (httpx, AiohttpTransport) if request.param == "httpx" else (httpx2, AiohttpTransport2)


@pytest.fixture
def http(flavour):
    return flavour[0]


@pytest.fixture
def made(flavour):
    return flavour[1]


@pytest.fixture
async def serve():
    """serve(script) → base URL; script(reader, writer, connection_number) runs per connection."""
    servers: list[asyncio.Server] = []

    async def start(script: Script, tls: ssl.SSLContext | None = None) -> str:
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

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def echo_forever(reader, writer, number):
    while True:
        head, body = await read_request(reader)
        writer.write(answer({"connection": number, "body": body.decode(), "head": head.decode()},
                            b"x-many: 1\r\nx-many: 2\r\n"))
        await writer.drain()


async def test_calls_reuse_one_connection_and_carry_bodies_headers_and_status(serve, http, made):
    url = await serve(echo_forever)
    async with http.AsyncClient(base_url=url, transport=made()) as client:
        answers = [await client.post("/x", json={"i": i}, headers={"x-mine": "yes"}) for i in range(3)]
    assert [a.json()["connection"] for a in answers] == [1, 1, 1]
    assert [json.loads(a.json()["body"]) for a in answers] == [{"i": 0}, {"i": 1}, {"i": 2}]
    head = answers[0].json()["head"].lower()
    assert head.startswith("post /x http/1.1") and "x-mine: yes" in head and "content-type: application/json" in head
    assert answers[0].status_code == 200 and answers[0].reason_phrase == "Fine Thanks"
    assert answers[0].headers.get_list("x-many") == ["1", "2"]


async def test_no_keepalive_expiry_keeps_reusing_the_connection(serve, http, made):
    url = await serve(echo_forever)
    async with http.AsyncClient(base_url=url, transport=made(limits=http.Limits(keepalive_expiry=None))) as client:
        answers = [(await client.get("/x")).json() for _ in range(3)]
    assert [a["connection"] for a in answers] == [1, 1, 1]


async def test_a_streamed_request_body_arrives_whole(serve, http, made):
    url = await serve(echo_forever)

    async def pieces():
        for piece in (b"one ", b"two ", b"three"):
            yield piece

    async with http.AsyncClient(base_url=url, transport=made()) as client:
        response = await client.post("/x", content=pieces())
    assert response.json()["body"] == "one two three"


async def test_a_streamed_answer_comes_piece_by_piece_and_an_unfinished_one_is_not_reused(serve, http, made):
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
    async with http.AsyncClient(base_url=url, transport=made()) as client:
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


async def test_a_refused_connection_is_a_connect_error(http, made):
    async with http.AsyncClient(transport=made()) as client:
        with pytest.raises(http.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/x")


async def test_a_server_that_never_answers_is_a_read_timeout(serve, http, made):
    async def hang(reader, writer, number):
        await read_request(reader)
        await asyncio.Event().wait()

    url = await serve(hang)
    async with http.AsyncClient(base_url=url, transport=made(), timeout=0.3) as client:
        with pytest.raises(http.ReadTimeout):
            await client.get("/x")


async def test_a_stalled_stream_is_a_read_timeout_between_pieces(serve, http, made):
    async def stall(reader, writer, number):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.Event().wait()

    url = await serve(stall)
    async with http.AsyncClient(base_url=url, transport=made(), timeout=0.3) as client:
        async with client.stream("GET", "/x") as response:
            pieces = response.aiter_bytes()
            assert await anext(pieces) == b"first"
            with pytest.raises(http.ReadTimeout):
                await anext(pieces)


@pytest.mark.parametrize("reply", [
    b"",  # hangs up without answering
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",  # hangs up mid-body
    b"this is not HTTP at all\r\n\r\n",
], ids=["no-answer", "truncated", "garbage"])
async def test_a_broken_answer_is_a_protocol_error(serve, reply, http, made):
    async def broken(reader, writer, number):
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    url = await serve(broken)
    async with http.AsyncClient(base_url=url, transport=made()) as client:
        with pytest.raises(http.RemoteProtocolError):
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
def test_each_aiohttp_error_maps_to_the_error_httpcore_would_raise(error, expected, http):
    mapped = _mapped(error, http)
    assert type(mapped) is getattr(http, expected.__name__) and str(mapped)


async def test_aclose_closes_the_pool_and_a_later_call_opens_a_new_one(serve, http, made):
    url = await serve(echo_forever)
    transport = made()
    async with http.AsyncClient(base_url=url, transport=transport) as client:
        assert (await client.get("/x")).json()["connection"] == 1
        session = transport._session
        await transport.aclose()
        assert session is not None and session.closed
        assert (await client.get("/x")).json()["connection"] == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(serve, http, made):
    closed = asyncio.Event()

    async def answer_once(reader, writer, number):
        await read_request(reader)
        writer.write(answer({"connection": number}))
        await writer.drain()
        writer.close()
        closed.set()

    url = await serve(answer_once)
    long_keepalive = http.Limits(max_connections=10, keepalive_expiry=60)  # expiry is not the cause
    transport = made(limits=long_keepalive)
    async with http.AsyncClient(base_url=url, transport=transport) as client:
        first = (await client.post("/x", json={})).json()
        await asyncio.wait_for(closed.wait(), 5)
        idle = transport._session.connector._conns  # aiohttp's pool: key -> [(protocol, since)]
        await async_wait_until(lambda: not any(p.is_connected() for conns in idle.values() for p, _ in conns),
                               timeout=3, message="the idle connection to read as closed")
        second = (await client.post("/x", json={})).json()
    assert (first["connection"], second["connection"]) == (1, 2)


async def test_a_large_body_goes_and_comes_whole(serve, http, made):
    async def sized(reader, writer, number):
        _, body = await read_request(reader)
        big = b"y" * 500_000
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-got: %d\r\n\r\n%s" % (len(big), len(body), big))
        await writer.drain()

    url = await serve(sized)
    async with http.AsyncClient(base_url=url, transport=made()) as client:
        response = await client.post("/x", content=b"x" * 300_000)
    assert response.headers["x-got"] == "300000" and len(response.content) == 500_000


async def test_a_read_response_is_freed_without_the_cyclic_collector(serve, http, made):
    """httpx's Response <-> body-stream cycle is undone once the body is closed, so a call's objects
    go by reference counting."""
    url = await serve(echo_forever)
    async with http.AsyncClient(base_url=url, transport=made()) as client:
        await client.post("/x", json={})
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                response = await client.post("/x", json={"i": 1})
                assert response.json()["connection"] == 1
                assert response.elapsed.total_seconds() > 0  # the client still records it
            del response
            left = gc.collect()
        finally:
            gc.enable()
    assert left < 50


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    return server_ctx, ssl.create_default_context(cafile=str(cert_file))


async def test_tls_with_a_trusted_certificate_works_and_an_unknown_one_is_refused(serve, http, made, tmp_path):
    server_ctx, trusting = _self_signed(tmp_path)
    url = await serve(echo_forever, tls=server_ctx)
    async with http.AsyncClient(base_url=url, transport=made(verify=trusting)) as client:
        answers = [(await client.post("/x", json={"i": i})).json() for i in range(2)]
    assert [a["connection"] for a in answers] == [1, 1]
    async with http.AsyncClient(base_url=url, transport=made(), timeout=5) as client:
        with pytest.raises(http.ConnectError):
            await client.post("/x", json={})
