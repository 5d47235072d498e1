"""The asyncio network layer under httpx: reuse, closed idle connections, timeouts, large bodies, TLS.

The server is a raw asyncio HTTP/1.1 responder on loopback, so what is tested is what goes over
the socket, not a mock of httpcore.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import json
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.asyncio_transport import AsyncioBackend, transport
from tests.waiting import async_wait_until


class RawServer:
    """Answers each request with {"bytes": <body length>, "connection": <n>}; can hang or close."""

    def __init__(self, *, hang: bool = False, close_after_reply: bool = False) -> None:
        self.hang, self.close_after_reply = hang, close_after_reply
        self.connections = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if self.hang:
                    await asyncio.Event().wait()
                answer = json.dumps({"bytes": len(body), "connection": number}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
                if self.close_after_reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def server():
    made: list[RawServer] = []

    async def start(**kwargs) -> tuple[RawServer, str]:
        srv = RawServer(**kwargs)
        made.append(srv)
        return srv, await srv.start()

    yield start
    for srv in made:
        await srv.stop()


async def test_the_pool_runs_on_the_asyncio_backend():
    made = transport()
    assert isinstance(made._pool._network_backend, AsyncioBackend)
    await made.aclose()


async def test_a_read_response_is_freed_without_the_cyclic_collector(server):
    """services/unbound_responses.py: httpx's Response <-> BoundAsyncStream cycle is undone once the
    body is closed, so a call's objects go by reference counting (httpx alone leaves ~40 per call)."""
    _, url = await server()
    async with httpx.AsyncClient(base_url=url, transport=transport()) as client:
        await client.post("/x", json={})
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                response = await client.post("/x", json={"i": 1})
                assert response.json()["bytes"] == len(b'{"i":1}')
                assert response.elapsed.total_seconds() > 0  # httpx still records it
            del response
            left = gc.collect()
        finally:
            gc.enable()
    assert left < 50


async def test_a_streamed_response_still_reads_through_the_unbinding_stream(server):
    _, url = await server()
    async with httpx.AsyncClient(base_url=url, transport=transport()) as client:
        async with client.stream("POST", "/x", json={"abc": 1}) as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
        assert json.loads(body)["bytes"] == len(b'{"abc":1}')
        assert response.is_closed and response.elapsed.total_seconds() > 0


async def test_requests_reuse_one_connection(server):
    srv, url = await server()
    async with httpx.AsyncClient(base_url=url, transport=transport()) as client:
        answers = [(await client.post("/x", json={"i": i})).json() for i in range(5)]
    assert {a["connection"] for a in answers} == {1}
    assert srv.connections == 1


async def test_a_connection_closed_by_the_server_while_idle_is_replaced(server):
    srv, url = await server(close_after_reply=True)
    long_keepalive = httpx.Limits(max_connections=10, keepalive_expiry=60)  # expiry is not the cause
    async with httpx.AsyncClient(base_url=url, transport=transport(limits=long_keepalive)) as client:
        first = (await client.post("/x", json={})).json()
        await asyncio.wait_for(srv.closed.wait(), 5)
        pool = client._transport._pool
        # once the server's FIN has arrived the idle connection reads as expired (is_readable) and
        # the pool drops it, at once or when asked
        await async_wait_until(lambda: not pool.connections or pool.connections[0].has_expired(),
                               timeout=3, message="the idle connection to read as closed")
        second = (await client.post("/x", json={})).json()
    assert (first["connection"], second["connection"]) == (1, 2)


async def test_a_large_body_arrives_whole(server):
    _, url = await server()
    body = b"x" * 300_000  # larger than the coalescing buffer: sent in pieces with flow control
    async with httpx.AsyncClient(base_url=url, transport=transport()) as client:
        answer = (await client.post("/x", content=body)).json()
    assert answer["bytes"] == len(body)


async def test_a_server_that_never_answers_raises_read_timeout(server):
    _, url = await server(hang=True)
    async with httpx.AsyncClient(base_url=url, transport=transport(), timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/x", json={})


async def test_nothing_listening_raises_connect_error(server):
    srv, url = await server()
    await srv.stop()
    srv.server and await srv.server.wait_closed()
    async with httpx.AsyncClient(base_url=url, transport=transport(), timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/x")


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


async def test_tls_with_a_trusted_certificate_works_and_an_unknown_one_is_refused(tmp_path):
    server_ctx, trusting = _self_signed(tmp_path)
    srv = RawServer()
    url = await srv.start(server_ctx)
    try:
        async with httpx.AsyncClient(base_url=url, transport=transport(verify=trusting)) as client:
            answers = [(await client.post("/x", json={"i": i})).json() for i in range(2)]
        assert [a["connection"] for a in answers] == [1, 1]
        async with httpx.AsyncClient(base_url=url, transport=transport(), timeout=5) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post("/x", json={})
    finally:
        await srv.stop()


async def test_answers_resume_one_per_loop_turn_in_order_and_a_cancelled_waiter_passes_its_turn():
    from services.asyncio_transport import _Turns

    loop = asyncio.get_running_loop()
    turns = _Turns(loop)
    resumed: list[str] = []

    async def answer(name: str) -> None:
        await turns.take()
        resumed.append(name)

    tasks = {name: asyncio.create_task(answer(name)) for name in "abcd"}
    await asyncio.sleep(0)  # one turn: every task reached take(); only the first went on
    assert resumed == ["a"]
    tasks["c"].cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    assert resumed == ["a", "b", "d"]
    assert tasks["c"].cancelled()
    await asyncio.wait_for(turns.take(), 1)  # the chain ended: a lone taker goes on at once
