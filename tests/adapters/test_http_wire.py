"""The wire to OBS on real loopback sockets, plain and TLS: a request arrives as the bytes built
for it, in one piece when sealed; the connection is kept alive, opened again when OBS closes
it, and a record that no longer fits is sealed again rather than sent wrong."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import h11
import pytest

from obsd.adapters.clock import SystemClock
from obsd.adapters.http_wire import WireConnection, WireError, WireTimeout
from obsd.sim.tls import make_test_certificate
from tests.adapters.loopback_http import Server, serving


def wire(server: Server, tls: ssl.SSLContext | None = None, read_s: float = 5.0) -> WireConnection:
    return WireConnection(
        server.url, SystemClock(), connect_timeout_s=5, read_timeout_s=read_s, tls_context=tls
    )


def post(connection: WireConnection, body: bytes = b'{"ECRN":["21234"],"SCRN":[]}') -> object:
    headers = [("Content-Type", "application/json"), ("Authorization", "Bearer a.b.c")]
    return connection.build("POST", "/api/ders-kayit/v21", headers, body)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    made = make_test_certificate(Path(tmp_path_factory.mktemp("tls")))
    return made.server_context(), ssl.create_default_context(cafile=str(made.ca))


@pytest.mark.parametrize("use_tls", [False, True])
async def test_a_sealed_post_arrives_whole_in_one_piece_and_the_connection_is_kept(
    use_tls: bool, certificate: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = certificate if use_tls else (None, None)
    async with serving(tls=server_tls) as server:
        connection = wire(server, client_tls)
        probe = connection.build("HEAD", "/api/ders-kayit/v21", [], b"")
        await connection.send(probe)
        assert (await connection.response()).status == 200
        outgoing = post(connection)
        await connection.seal(outgoing)
        assert outgoing.sealed is not None
        if not use_tls:
            assert outgoing.sealed == outgoing.plain
        await connection.send(outgoing)
        reply = await connection.response()
        await connection.aclose()
    assert reply.status == 200 and reply.body == b'{"ok":true}'
    (_, head, _), (number, whole, chunks) = server.requests
    assert server.connections == 1 and number == 1, "one kept-alive connection"
    assert whole == outgoing.plain and len(chunks) == 1, "the bytes built, in one piece"
    assert whole.startswith(b"POST /api/ders-kayit/v21 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert head.startswith(b"HEAD /api/ders-kayit/v21 HTTP/1.1\r\n")


async def test_a_record_sealed_before_another_request_is_sealed_again_not_sent_wrong(
    certificate: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = certificate
    async with serving(tls=server_tls) as server:
        connection = wire(server, client_tls)
        first = post(connection, b'{"ECRN":["11111"],"SCRN":[]}')
        await connection.seal(first)
        # Something else goes first: the sealed record is spoilt, so its session is given up.
        other = post(connection, b'{"ECRN":["22222"],"SCRN":[]}')
        await connection.send(other)
        assert (await connection.response()).status == 200
        await connection.send(first)
        assert (await connection.response()).status == 200
        await connection.aclose()
    bodies = [whole.rpartition(b"\r\n\r\n")[2] for _, whole, _ in server.requests]
    assert bodies == [b'{"ECRN":["22222"],"SCRN":[]}', b'{"ECRN":["11111"],"SCRN":[]}']
    assert server.connections == 2, "a new TLS session for what the spoilt one could not carry"


async def test_an_answer_that_closes_the_connection_is_read_and_the_next_request_reconnects() -> (
    None
):
    def closing(request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        return 503, [("connection", "close")], b"<html>busy</html>"

    async with serving(closing) as server:
        connection = wire(server)
        for _ in range(2):
            await connection.send(post(connection))
            reply = await connection.response()
            assert reply.status == 503 and reply.body == b"<html>busy</html>"
        await connection.aclose()
    assert server.connections == 2


async def test_no_answer_is_a_timeout_and_a_refused_connection_is_a_wire_error() -> None:
    async with serving(silent=True) as server:
        connection = wire(server, read_s=0.2)
        await connection.send(post(connection))
        with pytest.raises(WireTimeout):
            await connection.response()
        await connection.aclose()
    refused = WireConnection(
        server.url, SystemClock(), connect_timeout_s=1, read_timeout_s=1
    )  # nobody listens there any more
    with pytest.raises(WireError):
        await refused.send(post(refused))


def test_a_base_url_must_be_http_or_https() -> None:
    with pytest.raises(ValueError, match="is not an http:// or https:// URL"):
        WireConnection("ftp://obs.test", SystemClock(), connect_timeout_s=1, read_timeout_s=1)


async def test_a_connection_obs_closed_while_idle_is_given_up_before_the_write() -> None:
    def closing(request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [], b"{}"

    async with serving(closing, idle_close=True) as server:
        connection = wire(server)
        await connection.send(post(connection))
        await connection.response()
        await server.closed_idle.wait()  # OBS's keep-alive timeout ended it meanwhile.
        outgoing = post(connection)
        await connection.seal(outgoing)
        await connection.send(outgoing)
        assert (await connection.response()).status == 200
        await connection.aclose()
    assert server.connections == 2 and len(server.requests) == 2


async def test_an_answer_never_read_ends_the_connection_and_the_next_request_is_answered() -> None:
    async with serving(silent=True) as server:
        connection = wire(server, read_s=0.2)
        await connection.send(post(connection))
        with pytest.raises(WireTimeout):
            await connection.response()
    async with serving() as server:
        # The same object, another server: what matters is that nothing of the unanswered
        # request is left (no h11 state, no socket) to push the next one out blind.
        connection._host, connection._port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        await connection.send(post(connection))
        assert (await connection.response()).status == 200
        await connection.aclose()
    assert server.connections == 1 and len(server.requests) == 1


async def test_sealing_sends_nothing_of_the_request_and_a_close_before_the_send_reconnects(
    certificate: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    for server_tls, client_tls in ((None, None), certificate):
        async with serving(tls=server_tls) as server:
            connection = wire(server, client_tls)
            await connection.send(connection.build("HEAD", "/api/ders-kayit/v21", [], b""))
            await connection.response()
            before = server.bytes_in
            outgoing = post(connection)
            await connection.seal(outgoing)
            assert server.bytes_in == before, "not a byte of the POST before its send"
            server.close_idle()  # OBS's keep-alive timeout, between seal and send
            with anyio.fail_after(5):
                while not connection._peer_closed():  # the FIN has reached our socket
                    await anyio.sleep(0)
            await connection.send(outgoing)
            assert (await connection.response()).status == 200
            await connection.aclose()
        assert server.connections == 2 and len(server.requests) == 2


async def test_a_failed_handshake_is_not_kept_as_the_connection(
    certificate: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, _ = certificate
    untrusting = ssl.create_default_context()  # does not know the simulator's CA
    async with serving(tls=server_tls) as server:
        connection = wire(server, untrusting)
        for _ in range(2):
            with pytest.raises(WireError, match="CERTIFICATE_VERIFY_FAILED"):
                await connection.seal(post(connection))
    assert connection._stream is None


async def test_a_request_cancelled_before_its_answer_leaves_no_owed_answer_behind() -> None:
    async with serving() as server:
        connection = wire(server)
        outgoing = post(connection)
        await connection.seal(outgoing)
        probe = connection.build("HEAD", "/api/ders-kayit/v21", [], b"")
        with anyio.move_on_after(0):  # a warm-up given up at its deadline, say
            await connection.send(probe)
            await connection.response()
        await connection.send(outgoing)
        reply = await connection.response()
        await connection.aclose()
    assert reply.status == 200 and reply.body == b'{"ok":true}'


async def test_over_tls_an_answer_ended_by_a_close_without_close_notify_is_read_whole(
    certificate: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = certificate
    answer = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n<html>busy</html>"
    async with serving(tls=server_tls, raw_answer=answer) as server:
        connection = wire(server, client_tls)
        for _ in range(2):
            await connection.send(post(connection))
            reply = await connection.response()
            assert reply.status == 503 and reply.body == b"<html>busy</html>"
        await connection.aclose()
    assert server.connections == 2


async def test_over_tls_a_close_without_close_notify_mid_answer_is_a_wire_error(
    certificate: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = certificate
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ecrnResultList"'
    async with serving(tls=server_tls, raw_answer=answer) as server:
        connection = wire(server, client_tls)
        await connection.send(post(connection))
        with pytest.raises(WireError):
            await connection.response()
        # The broken connection is not kept: the next request opens another.
        await connection.send(post(connection))
        with pytest.raises(WireError):
            await connection.response()
        await connection.aclose()
    assert server.connections == 2
