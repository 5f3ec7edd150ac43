"""A loopback HTTP/1.1 server for the adapter tests: what each request arrived as, and a
scripted answer (plain, or TLS with the simulator's throw-away certificate)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import anyio.abc
import h11
from anyio.streams.tls import TLSListener

# Each request's answer: status, extra headers, body.
Script = Callable[[h11.Request], tuple[int, list[tuple[str, str]], bytes]]


def ok(request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, [], b'{"ok":true}'


@dataclass
class Server:
    """A loopback HTTP/1.1 server: each connection, and the chunks each request came in."""

    url: str
    connections: int = 0
    requests: list[tuple[int, bytes, list[bytes]]] = field(default_factory=list)
    # Set when a connection was closed by the server after its answer (idle_close).
    closed_idle: anyio.Event = field(default_factory=anyio.Event)
    # Every byte of requests received, over all connections (TLS: as decrypted).
    bytes_in: int = 0
    # close_idle(): the connections open now close when idle, as a keep-alive timeout does.
    close_idle_now: anyio.Event = field(default_factory=anyio.Event)
    closing_upto: int = 0

    def close_idle(self) -> None:
        """Close every connection open now once it is idle (later ones stay)."""
        self.closing_upto = self.connections
        self.close_idle_now.set()


@asynccontextmanager
async def serving(
    script: Script = ok,
    tls: ssl.SSLContext | None = None,
    *,
    silent: bool = False,
    idle_close: bool = False,
    raw_answer: bytes | None = None,
) -> AsyncIterator[Server]:
    """Serve on loopback; `silent`: never answer; `idle_close`: close each connection after
    its first answer, without saying so (as a keep-alive timeout does); `raw_answer`: answer
    with these bytes, then close (over TLS without close_notify, as IIS often does)."""
    listener: anyio.abc.Listener[anyio.abc.ByteStream] = await anyio.create_tcp_listener(
        local_host="127.0.0.1"
    )
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # type: ignore[attr-defined]
    server = Server(f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    if tls is not None:
        listener = TLSListener(listener, tls, standard_compatible=False)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        server.connections += 1
        number = server.connections
        http = h11.Connection(our_role=h11.SERVER)
        chunks: list[bytes] = []
        async with stream:
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = b""
                    with anyio.move_on_after(60) as waiting:
                        async with anyio.create_task_group() as race:

                            async def closer() -> None:
                                await server.close_idle_now.wait()
                                if number <= server.closing_upto:
                                    race.cancel_scope.cancel()

                            async def reader() -> None:
                                nonlocal data
                                with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                                    data = await stream.receive()
                                race.cancel_scope.cancel()

                            race.start_soon(closer)
                            race.start_soon(reader)
                    if not data or waiting.cancel_called:
                        return
                    server.bytes_in += len(data)
                    chunks.append(data)
                    http.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.EndOfMessage):
                    server.requests.append((number, b"".join(chunks), chunks))
                    chunks = []
                    if silent:
                        await anyio.sleep_forever()
                    if raw_answer is not None:
                        await stream.send(raw_answer)
                        return  # The listener's TLS is not standard-compatible: no close_notify.
                    status, headers, body = script(request)
                    closing = ("connection", "close") in headers
                    length = [("content-length", str(len(body)))]
                    out = http.send(h11.Response(status_code=status, headers=headers + length))
                    if request.method != b"HEAD":
                        out += http.send(h11.Data(data=body))
                    out += http.send(h11.EndOfMessage())
                    await stream.send(out)
                    if closing:
                        return
                    if idle_close:
                        await stream.aclose()
                        server.closed_idle.set()
                        return
                    http.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, handle)
        yield server
        tasks.cancel_scope.cancel()
