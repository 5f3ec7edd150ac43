"""One control connection: greeting, framed requests in order, responses, an optional tail."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import anyio
import anyio.abc

from obsd.adapters.clock import Clock
from obsd.adapters.control_socket import access_for, peer_of
from obsd.core.admission import Admission
from obsd.core.framing import LineFramer, OversizedLine
from obsd.core.protocol import (
    ErrorCode,
    ProtocolError,
    Response,
    Tail,
    decode_request,
    encode_line,
    error_response,
)
from obsd.core.repeats import RepeatedFailure
from obsd.core.replies import TailReply
from obsd.core.timing import NS
from obsd.daemon.context import Caller
from obsd.daemon.dispatch import Dispatcher
from obsd.daemon.tail import stream_tail

logger = logging.getLogger("obsd.connection")

RECEIVE_BYTES: Final = 64 * 1024
# After a failed accept (nearly always EMFILE: out of descriptors) wait this long: long enough
# not to spin on a listener that stays readable, short enough to serve soon after fds free up.
ACCEPT_RETRY_S: Final = 0.1
_DISCONNECTED = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class Connection:
    """Serves one client until it disconnects; nothing it sends can escape as an exception."""

    def __init__(
        self, stream: anyio.abc.SocketStream, dispatcher: Dispatcher, caller: Caller
    ) -> None:
        self._stream = stream
        self._dispatcher = dispatcher
        self._caller = caller
        self._send_lock = anyio.Lock()
        self._tailing = False

    async def send(self, data: bytes) -> None:
        """Write whole lines; responses and tail output never interleave mid-line."""
        async with self._send_lock:
            await self._stream.send(data)

    async def run(self) -> None:
        """Greet, then answer each line until the peer goes away."""
        greeting = self._dispatcher.greeting(self._caller.access)
        await self.send(encode_line(Response(None, True, greeting)))
        framer = LineFramer()
        async with anyio.create_task_group() as tasks:
            while True:
                try:
                    data = await self._stream.receive(RECEIVE_BYTES)
                except anyio.EndOfStream:
                    break
                for line in framer.feed(data):
                    await self._serve_line(line, tasks)
            tasks.cancel_scope.cancel()

    async def _serve_line(self, line: bytes | OversizedLine, tasks: anyio.abc.TaskGroup) -> None:
        if isinstance(line, OversizedLine):
            response = error_response(
                None,
                ErrorCode.LINE_TOO_LONG,
                f"request line longer than {line.limit} bytes; it was discarded",
            )
        elif not line.strip():
            return  # Blank lines are allowed as keep-alives.
        else:
            request_id = None
            try:
                request = decode_request(line)
                request_id = request.id
                if isinstance(request, Tail):
                    await self._start_tail(request, tasks)
                    return
                data = await self._dispatcher.handle(request, self._caller)
                response = Response(request.id, True, data)
            except ProtocolError as exc:
                response = exc.response()
            except _DISCONNECTED:
                raise  # The peer is gone (e.g. mid-tail): end the connection quietly.
            except Exception:
                logger.exception("request %r failed", request_id)
                response = error_response(
                    request_id,
                    ErrorCode.INTERNAL_ERROR,
                    "internal error; the daemon's log has details",
                )
        await self.send(encode_line(response))

    async def _start_tail(self, request: Tail, tasks: anyio.abc.TaskGroup) -> None:
        journal = self._dispatcher.ctx.journal
        log, log_id = journal.log, journal.state.log_id
        if self._tailing:
            raise ProtocolError(
                ErrorCode.ALREADY_TAILING,
                "this connection is already following the log",
                request.id,
            )
        if request.log_id is not None and request.log_id != log_id:
            raise ProtocolError(
                ErrorCode.LOG_ID_MISMATCH,
                f"log_id {request.log_id} is not this daemon's log ({log_id}); "
                "its seqs do not apply here",
                request.id,
            )
        after = log.head_seq if request.after_seq is None else request.after_seq
        if after > log.head_seq:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"after_seq {after} is beyond the head of the log ({log.head_seq}) - at "
                "`$.after_seq`",
                request.id,
            )
        data = TailReply(
            log_id=log_id, after_seq=after, head_seq=log.head_seq, follow=request.follow
        )
        await self.send(encode_line(Response(request.id, True, data)))
        if request.follow:
            self._tailing = True
            tasks.start_soon(self._tail_quietly, after, log_id)
        else:
            await stream_tail(journal, self.send, after, follow=False, log_id=log_id)

    async def _tail_quietly(self, after: int, log_id: str | None) -> None:
        with contextlib.suppress(*_DISCONNECTED):
            await stream_tail(
                self._dispatcher.ctx.journal, self.send, after, follow=True, log_id=log_id
            )


async def serve_connection(
    stream: anyio.abc.SocketStream,
    dispatcher: Dispatcher,
    admission: Admission,
    daemon_uid: int,
    admin_gid: int | None,
) -> None:
    """Serve one accepted connection, or refuse it over the caps; never raises."""
    try:
        async with stream:
            peer = peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))
            caller = Caller(peer, access_for(peer, daemon_uid, admin_gid))
            if refusal := admission.refusal(peer.uid, caller.access):
                # In place of the greeting: the client says why, and the slot stays free.
                await stream.send(
                    encode_line(error_response(None, ErrorCode.TOO_MANY_CONNECTIONS, refusal))
                )
                return
            admission.take(peer.uid, caller.access)
            try:
                await Connection(stream, dispatcher, caller).run()
            finally:
                admission.give_back(peer.uid, caller.access)
    except _DISCONNECTED:
        pass
    except Exception as exc:
        # The task group wraps a peer's disconnect in an ExceptionGroup; that is no failure.
        if not isinstance(exc, ExceptionGroup) or exc.split(_DISCONNECTED)[1] is not None:
            logger.exception("connection failed")


async def accept_connections(
    listener: anyio.abc.SocketListener,
    serve: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    tasks: anyio.abc.TaskGroup,
    clock: Clock,
) -> None:
    """Accept forever, serving each connection in `tasks`; failures are said once, counted."""
    failures = RepeatedFailure("accepting a connection")
    while True:
        try:
            stream = await listener.accept()
        except anyio.BrokenResourceError as exc:
            cause = exc.__cause__
            detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else repr(exc)
            if line := failures.failed(detail, clock.mono_ns()):
                logger.error("%s", line)
            await clock.sleep_until(clock.mono_ns() + int(ACCEPT_RETRY_S * NS))
            continue
        if line := failures.succeeded(clock.mono_ns()):
            logger.warning("%s", line)
        tasks.start_soon(serve, stream)
