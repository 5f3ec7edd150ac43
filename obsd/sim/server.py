"""The simulator's HTTP/1.1 server, on asyncio Protocols: keep-alive, first-byte stamps, delays.

Network latency is injected inside the server, not by a proxy: each request waits, after its
first byte was stamped (`received_ns`, in true time: see below), until
`arrival_ns = received_ns + delay`, the delay drawn per request as `request_delay_s` ± uniform
`request_jitter_s` (never below zero), for every request but the admin ones (`/_sim/...`),
HEAD and GET included. Only then does "OBS" see it: the opening check, the debounce and the
token expiry all use `arrival_ns`. The answer is then held `response_delay_s` ±
`response_jitter_s`. So with a 20 ms delay, a request whose first byte reached the server at
R (the real loopback transit included) is judged as arriving at R + 20 ms. Requests on one
connection are answered in order, each delay measured from its own first byte.

The stamp is the kernel's receive time of the bytes (`StampedSocket`), so a busy event loop
or CPU does not make a request look later than it reached the machine; over TLS it is the
receive time of the record that carried them. A wall clock other than the system's (tests
inject one) has no kernel stamp: then the stamp is read first thing in `data_received`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import struct
from collections.abc import Coroutine
from typing import Final

from obsd.core.timing import NS
from obsd.sim.app import SimApp
from obsd.sim.clock import SimClock
from obsd.sim.http11 import BadRequest, HttpRequest, Reply, RequestParser, render_response
from obsd.sim.stamped_socket import StampedSocket, enable_stamps

logger = logging.getLogger("obsd.sim")

# Pipelined requests parsed ahead of the answers before the server stops reading.
MAX_QUEUED_REQUESTS: Final = 16
# asyncio's own default for create_server.
LISTEN_BACKLOG: Final = 100
# After a failed accept (descriptors exhausted, say), a pause before the next, as a server
# that cannot accept should not spin on it.
ACCEPT_RETRY_S: Final = 0.1
# SO_LINGER on with a zero timeout: close() sends RST, the "connection reset" clients see.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)


class HttpConnection(asyncio.Protocol):
    """One client connection: parses as bytes arrive, answers in order from a task."""

    def __init__(
        self,
        app: SimApp,
        clock: SimClock,
        live: set[HttpConnection],
        number: int,
        stamps: StampedSocket | None,
    ) -> None:
        self._app = app
        self._number = number
        self._clock = clock
        self._stamps = stamps
        self._live = live
        self._parser = RequestParser()
        self._queue: asyncio.Queue[HttpRequest | BadRequest | None] = asyncio.Queue()
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading = True
        self._transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start answering."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._live.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        """Stamp the bytes with true time before anything else, then parse them."""
        wall_ns = None if self._stamps is None else self._stamps.received_wall_ns
        received_ns = self._clock.true_ns() if wall_ns is None else self._clock.true_at(wall_ns)
        for item in self._parser.feed(data, received_ns):
            self._queue.put_nowait(item)
        if self._queue.qsize() >= MAX_QUEUED_REQUESTS and self._transport is not None:
            self._transport.pause_reading()
            self._reading = False

    def eof_received(self) -> bool:
        """Answer what was sent before the half-close, then close."""
        self._queue.put_nowait(None)  # the end of input, after the requests queued before it
        # Over TLS the transport closes regardless (and warns if asked not to).
        return self._transport is not None and self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop answering; anything still queued is dropped with the connection."""
        self._live.discard(self)
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:
        """The client does not read its answers: stop producing them."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """The client reads again."""
        self._writable.set()

    def abort(self) -> None:
        """Drop the connection at once (shutdown)."""
        if self._transport is not None:
            self._transport.abort()

    async def _serve(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while True:
                item = await self._queue.get()
                if not self._reading and self._queue.qsize() < MAX_QUEUED_REQUESTS:
                    transport.resume_reading()
                    self._reading = True
                if item is None:
                    break
                if isinstance(item, BadRequest):
                    self._send(self._app.refuse(item, self._number), keep_alive=False)
                    break
                if not await self._exchange(transport, item):
                    return
        except Exception:
            # A bug must cost one connection, never the server.
            logger.exception("simulator: failed to answer a request; dropping the connection")
            transport.abort()
            return
        transport.close()

    async def _exchange(self, transport: asyncio.Transport, request: HttpRequest) -> bool:
        """Answer one request; return whether the connection stays open."""
        arrival_ns = request.received_ns
        if not self._app.is_admin(request):
            arrival_ns = self._app.arrival_ns(request.received_ns)
            wait_ns = arrival_ns - self._clock.true_ns()
            if wait_ns > 0:
                await asyncio.sleep(wait_ns / NS)
        reply = self._app.respond(request, arrival_ns, self._number)
        if reply.reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            transport.abort()
            return False
        if reply.hold_s > 0:
            await asyncio.sleep(reply.hold_s)
        await self._writable.wait()
        self._send(reply, keep_alive=request.keep_alive)
        if not request.keep_alive:
            transport.close()
        return request.keep_alive

    def _send(self, reply: Reply, *, keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(
            render_response(
                reply.status,
                reply.body,
                date=self._clock.date_header(),
                keep_alive=keep_alive,
                content_type=reply.content_type,
                extra_headers=reply.headers,
            )
        )


class HttpServer:
    """A listening simulator HTTP server and its live connections."""

    def __init__(
        self,
        listener: socket.socket,
        app: SimApp,
        clock: SimClock,
        context: ssl.SSLContext | None,
    ) -> None:
        self._listener = listener
        self._app = app
        self._clock = clock
        self._context = context
        self._live: set[HttpConnection] = set()
        self._numbers = itertools.count(1)
        # Handshakes under way, and the accept loop itself.
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = int(listener.getsockname()[1])

    @property
    def open_connections(self) -> int:
        """How many client connections are open."""
        return len(self._live)

    def start(self) -> None:
        """Accept connections from now on, each on a socket the kernel stamps."""
        self._spawn(self._accept())

    async def close(self) -> None:
        """Stop listening, drop every connection and wait for their tasks."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener.close()
        connections = list(self._live)
        for connection in connections:
            connection.abort()
        answering = [c.task for c in connections if c.task is not None]
        for task in answering:
            task.cancel()
        await asyncio.gather(*answering, return_exceptions=True)

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                accepted, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                # Out of descriptors or memory, or a client gone before its accept: go on.
                logger.warning("simulator: accept failed (%s); still listening", exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            self._spawn(self._adopt(StampedSocket.adopt(accepted)))

    async def _adopt(self, sock: StampedSocket) -> None:
        number = next(self._numbers)
        # The kernel stamps on the system's clock; an injected wall clock is read instead.
        stamps = sock if self._clock.reads_system_clock else None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: HttpConnection(self._app, self._clock, self._live, number, stamps),
                sock,
                ssl=self._context,
            )
        except OSError as exc:  # ssl.SSLError and TimeoutError included
            # A client that fails its TLS handshake or vanishes costs only its connection.
            logger.debug("simulator: connection %d not set up: %s", number, exc)
            sock.close()


async def start_http(
    app: SimApp, clock: SimClock, host: str, port: int, context: ssl.SSLContext | None
) -> HttpServer:
    """Listen on `host:port` (0 = any free port), over TLS when `context` is given."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    # Before any client can know the port, so every connection inherits the stamps.
    enable_stamps(listener)
    listener.setblocking(False)
    server = HttpServer(listener, app, clock, context)
    server.start()
    return server
