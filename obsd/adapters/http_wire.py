"""One kept-alive HTTP/1.1 connection to OBS of our own: each request bytes built ahead, one write.

httpx takes 0.3-0.5 ms from the call to the first byte on the wire and writes the headers and
the body apart; one write of bytes serialised in advance takes ~0.07 ms (timing-notes.md). So
the registration endpoint's traffic (the keep-alive HEADs and the POSTs) goes over this
connection: h11 turns a request into bytes when it is prepared, and over TLS those bytes are
sealed into their record in advance too (an `ssl.SSLObject` over memory BIOs, `seal`), so at
the instant sending is one write of ready bytes on the socket. The answer is read and parsed
after the write, off the clock.

Sealing in advance, rather than one `ssl.SSLSocket.sendall` of the plain bytes at the instant
(encrypting then), was measured side by side (tests/bench/bench_shot.py, docs/performance.md):
encrypting a few hundred bytes costs microseconds either way, and the two are within the
machine's noise of each other; sealing keeps the instant's work the same for HTTP and HTTPS
(one write of ready bytes) and lets this connection stay on the event loop like the rest.

A record sealed for the connection is the next thing it must carry: TLS numbers its records,
so nothing else may be written between `seal` and `send`, which the run driver guarantees by
sealing only after its last keep-alive probe. `send` checks it all the same: a record that no
longer fits (another was written, the connection was opened again) is sealed again, late but
never wrong, and a record sealed but never sent spoils its TLS session, which is then closed
before anything else is written.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11

from obsd.adapters.clock import Clock

# Read at most this much per receive: OBS's answers are a few KiB.
_RECEIVE_BYTES: Final = 65536
# The peer's half-close shows as POLLRDHUP on Linux (elsewhere a FIN cannot be told from data
# without reading it, and the connection counts as alive until a request finds out).
_RDHUP: Final = getattr(select, "POLLRDHUP", 0)
_POLL_MASK: Final = select.POLLIN | _RDHUP
_CLOSED_MASK: Final = select.POLLHUP | select.POLLERR | _RDHUP


class WireError(Exception):
    """The connection failed or OBS broke the protocol; the message says how."""


class WireTimeout(WireError):
    """No (complete) answer within the read timeout."""


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """The socket's, TLS's and h11's failures as WireError, here and nowhere else."""
    try:
        yield
    except WireError:
        raise
    except TimeoutError as exc:
        raise WireTimeout("no answer within the read timeout") from exc
    except (OSError, ssl.SSLError, h11.ProtocolError, anyio.BrokenResourceError) as exc:
        raise WireError(repr(exc)) from exc
    except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
        raise WireError("the connection was closed") from exc


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: status, headers (lower-case names), body, and when its end was read."""

    status: int
    headers: dict[str, str]
    body: bytes
    received_mono_ns: int


@dataclass(slots=True)
class Outgoing:
    """A request as bytes, and (over TLS) sealed for the connection as it stood then."""

    events: tuple[h11.Event, ...]
    plain: bytes
    sealed: bytes | None = None
    # Which connection, and which record of it, the sealed bytes are: (opened, writes).
    sealed_for: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class _Tls:
    """TLS over memory BIOs: records are sealed and opened here, the socket only carries them."""

    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO


class WireConnection:
    """One HTTP/1.1 connection to the host of a base URL, opened when first needed."""

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL")
        default_port = 443 if url.scheme == "https" else 80
        host = url.netloc.rpartition("@")[2]
        if url.port == default_port:
            host = host.rsplit(":", 1)[0]  # As httpx writes it: no port that goes without saying.
        self.host_header = host
        self._host = url.hostname
        self._port = url.port or default_port
        self._prefix = url.path.rstrip("/")
        self._tls_context = (
            (tls_context or ssl.create_default_context()) if url.scheme == "https" else None
        )
        self._clock = clock
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._stream: anyio.abc.SocketStream | None = None
        self._tls: _Tls | None = None
        self._http = h11.Connection(our_role=h11.CLIENT)
        self._writes = 0  # requests written on this connection (a new one starts again)
        self._opened = 0  # connections opened: a record is sealed for one of them
        # Over TLS, a record sealed and not yet sent: it must go before anything else.
        self._committed: Outgoing | None = None

    def build(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> Outgoing:
        """A request as the bytes it will be (serialised by h11 on a scratch connection)."""
        all_headers = [("Host", self.host_header), *headers]
        if body or method == "POST":
            all_headers.append(("Content-Length", str(len(body))))
        target = self._prefix + path
        events: list[h11.Event] = [h11.Request(method=method, target=target, headers=all_headers)]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        scratch = h11.Connection(our_role=h11.CLIENT)
        with _mapped():  # A header h11 refuses (a control character in a token) is a WireError.
            plain = b"".join(scratch.send(event) or b"" for event in events)
        return Outgoing(tuple(events), plain)

    async def seal(self, outgoing: Outgoing) -> None:
        """Open the connection if needed and seal the request's record for it (TLS)."""
        with _mapped():
            if self._fits(outgoing) and not self._peer_closed():
                return
            if self._committed is not None or not self._idle() or self._peer_closed():
                # A spoilt TLS session (a record never sent), an answer never read, or a
                # connection OBS closed: none may carry the request.
                await self.aclose()
            await self._open()
            if self._tls is not None:
                self._tls.tls.write(outgoing.plain)
                outgoing.sealed = self._tls.outgoing.read()
                self._committed = outgoing
            else:
                outgoing.sealed = outgoing.plain
            outgoing.sealed_for = (self._opened, self._writes)

    async def send(self, outgoing: Outgoing) -> int:
        """Write the request (one write of ready bytes if sealed for now); when the call began."""
        began = self._clock.mono_ns()
        with _mapped():
            # One syscall on the way (a poll): a connection OBS closed since the seal is
            # opened again, late, rather than written into and the POST lost.
            if not self._fits(outgoing) or self._peer_closed():
                await self.seal(outgoing)  # Stale or never sealed: correct, a little later.
            assert self._stream is not None and outgoing.sealed is not None
            try:
                await self._stream.send(outgoing.sealed)
                # Only now does h11 follow the request (to read its answer): its bookkeeping
                # (~20 µs) is kept off the clock.
                for event in outgoing.events:
                    self._http.send(event)
            except BaseException:
                await self._abort()
                raise
            self._writes += 1
            self._committed = None
            outgoing.sealed, outgoing.sealed_for = None, None  # A record goes once.
        return began

    def _idle(self) -> bool:
        """Whether h11 is between requests: no answer is owed on this connection."""
        return self._http.our_state is h11.IDLE and self._http.their_state is h11.IDLE

    def _fits(self, outgoing: Outgoing) -> bool:
        """Whether the sealed bytes are what this connection must carry next."""
        return (
            self._stream is not None
            and outgoing.sealed is not None
            and outgoing.sealed_for == (self._opened, self._writes)
            and self._committed in (None, outgoing)
            and self._idle()  # A request cancelled before its answer leaves one owed.
        )

    async def response(self) -> Reply:
        """Read the answer to the request just sent; the connection is then ready again.

        An answer not read to its end (a timeout, an error, a cancel) ends the connection:
        the next request must not go out behind it.
        """
        status, headers, body = 0, {}, bytearray()
        try:
            with _mapped(), anyio.fail_after(self._read_timeout_s):
                while True:
                    event = self._http.next_event()
                    if event is h11.NEED_DATA:
                        self._http.receive_data(await self._receive())
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                        headers = {
                            k.decode("latin-1").lower(): v.decode("latin-1")
                            for k, v in event.headers
                        }
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise WireError("OBS closed the connection before answering")
        except BaseException:
            await self._abort()
            raise
        received = self._clock.mono_ns()
        if self._http.our_state is h11.DONE and self._http.their_state is h11.DONE:
            self._http.start_next_cycle()
        else:
            await self.aclose()  # "Connection: close", or a state h11 cannot reuse.
        return Reply(status, headers, bytes(body), received)

    async def _abort(self) -> None:
        """Close the connection now, even while being cancelled."""
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (the next request opens a new one)."""
        stream, self._stream, self._tls, self._committed = self._stream, None, None, None
        self._http = h11.Connection(our_role=h11.CLIENT)
        if stream is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await stream.aclose()

    def _peer_closed(self) -> bool:
        """Whether OBS closed the connection (a FIN or a reset waits on the idle socket).

        One poll, reading nothing: data that waits (over TLS a late session ticket, say) is
        no sign of death, only the peer's end of stream, a hang-up or an error is. As
        httpcore does, a closed connection is given up before writing, not found dead by the
        POST's answer.
        """
        stream = self._stream
        if stream is None:
            return False
        if self._http.trailing_data[1]:
            return True  # h11 already saw the end of the stream.
        try:
            poller = select.poll()
            poller.register(stream.extra(anyio.abc.SocketAttribute.raw_socket), _POLL_MASK)
            ready = poller.poll(0)
        except (OSError, ValueError):
            return True
        return any(mask & _CLOSED_MASK for _, mask in ready)

    async def _open(self) -> None:
        if self._stream is not None:
            return
        try:
            with anyio.fail_after(self._connect_timeout_s):
                stream = await anyio.connect_tcp(self._host, self._port)
        except TimeoutError:
            raise WireError(
                f"no connection to {self._host}:{self._port} within {self._connect_timeout_s:g} s"
            ) from None
        tls = None
        try:
            if self._tls_context is not None:
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                session = self._tls_context.wrap_bio(incoming, outgoing, server_hostname=self._host)
                tls = _Tls(session, incoming, outgoing)
                with anyio.fail_after(self._connect_timeout_s):
                    await self._handshake(stream, tls)
        except BaseException:
            # A failed handshake is no connection: nothing of it is kept for the next try.
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await stream.aclose()
            if isinstance(sys.exc_info()[1], TimeoutError):
                raise WireError(f"the TLS handshake with {self._host} took too long") from None
            raise
        self._stream, self._tls, self._writes = stream, tls, 0
        self._opened += 1

    @staticmethod
    async def _handshake(stream: anyio.abc.SocketStream, tls: _Tls) -> None:
        while True:
            try:
                tls.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await _flush(stream, tls)
                tls.incoming.write(await stream.receive(_RECEIVE_BYTES))
            except ssl.SSLError:
                await _flush(stream, tls)  # The alert that says why, for OBS's side.
                raise
        await _flush(stream, tls)

    async def _receive(self) -> bytes:
        """The next bytes of the answer, opened from their records over TLS; b"" at the end."""
        assert self._stream is not None
        while True:
            try:
                data = await self._stream.receive(_RECEIVE_BYTES)
            except anyio.EndOfStream:
                data = b""
            tls = self._tls
            if tls is None:
                return data
            if data:
                tls.incoming.write(data)
            else:
                tls.incoming.write_eof()
            opened = bytearray()
            try:
                while chunk := tls.tls.read(_RECEIVE_BYTES):
                    opened += chunk
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return bytes(opened)  # close_notify: the end of the answer's stream.
            except ssl.SSLEOFError:
                if data:
                    raise
                return bytes(opened)  # A close without close_notify, as IIS often does.
            await _flush(self._stream, tls)  # What reading made TLS say back, if anything.
            # Records without application data (a TLS 1.3 session ticket) open to nothing.
            if opened or not data:
                return bytes(opened)


async def _flush(stream: anyio.abc.SocketStream, tls: _Tls) -> None:
    """Send what TLS has to say (handshake records, alerts, key updates)."""
    pending = tls.outgoing.read()
    if pending:
        await stream.send(pending)
