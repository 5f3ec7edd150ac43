"""Our own send path, aimed at a loopback listener: its delay measured, and warmed before a shot.

A listener thread blocked in recv() stamps the first byte of each request with the
monotonic clock; the difference from the instant `ObsClient.send` was called is the delay the
fire instant must absorb. The *fastest* sample is what is subtracted, not the median: the
listener's wake-up (the GIL, the scheduler) only ever adds to a sample, and a median that
overstates the real path by a millisecond would send the first byte that much before the fire
instant (the bench saw -1.2 ms with the median). Listeners parse requests with h11, as a
server would.

The samples are taken a few milliseconds apart, with the path warm. After the quiet second
before a shot the same send takes ~0.4 ms longer (caches and the CPU gone cold), so just
before the shot the path is warmed by requests to a listener of our own (core/timing.py says
when): the same client code, the same kind of socket, nothing sent to OBS. That listener is
served by the event loop itself, not a thread: a thread waking beside the loop makes the two
hand the GIL back and forth, which cost 5-25 ms stalls in the warm-up, right before the shot.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import anyio
import anyio.abc
import h11

from obsd.adapters.clock import SystemClock
from obsd.adapters.obs_client import Answer, ObsClient, ObsError
from obsd.core.timing import NS

SEND_DELAY_SAMPLES: Final = 15
# Setting up the warm-up (a listener, a connection, a first request) takes a few
# milliseconds; a shot closer than this goes unwarmed rather than late.
WARM_UP_SETUP_NS: Final = 200_000_000
# A loopback answer takes well under a millisecond; one this slow has failed as a warm-up.
_WARM_UP_TIMEOUT_S: Final = 0.1
_MEASURE_TIMEOUT_S: Final = 5.0
_ANSWER: Final = b"{}"
# Samples are taken a little apart, not back to back: the shot follows a quiet moment too.
_SAMPLE_SPACING_S: Final = 0.002
# A listener that hears nothing for this long has lost its client; it gives up.
_LISTENER_TIMEOUT_S: Final = 10.0


def _next_answer(http: h11.Connection) -> bytes | None:
    """The answer to the next complete request; b"" if more data is needed; None at the end."""
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            return b""
        if isinstance(event, h11.EndOfMessage):
            headers = [("content-type", "application/json"), ("content-length", str(len(_ANSWER)))]
            answer = (
                http.send(h11.Response(status_code=200, headers=headers))
                + http.send(h11.Data(data=_ANSWER))
                + http.send(h11.EndOfMessage())
            )
            http.start_next_cycle()
            return answer
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return None


class _Listener(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="obsd-send-path", daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(_LISTENER_TIMEOUT_S)
        self.first_bytes: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def run(self) -> None:
        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(_LISTENER_TIMEOUT_S)
            self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        http = h11.Connection(our_role=h11.SERVER)
        while (answer := _next_answer(http)) is not None:
            if answer:
                connection.sendall(answer)
                continue
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if http.their_state is h11.IDLE and data:
                self.first_bytes.append(time.monotonic_ns())
            http.receive_data(data)


class _Loopback:
    """A client on a loopback listener, sending the registration POST for some CRNs."""

    def __init__(self, client: ObsClient, ecrn: list[str], scrn: list[str]) -> None:
        self._client = client
        self._ecrn = ecrn
        self._scrn = scrn

    async def send(self) -> Answer:
        """Send the registration POST once, as the shot does: prepared, sealed, then sent."""
        post = self._client.prepare(self._ecrn, self._scrn)
        await self._client.seal(post)
        return await self._client.send(post)

    async def warm_up(self, deadline_mono_ns: int) -> None:
        """One request, given up at the deadline; its failure is no one else's."""
        with anyio.move_on_after((deadline_mono_ns - time.monotonic_ns()) / NS):
            with contextlib.suppress(ObsError):
                await self.send()


@contextlib.asynccontextmanager
async def _loopback_client(
    url: str, ecrn: list[str], scrn: list[str], read_timeout_s: float
) -> AsyncIterator[_Loopback]:
    """A client on the listener at `url`, its connection opened by a first request."""
    async with ObsClient(url, "measurement", read_timeout_s, SystemClock()) as client:
        loopback = _Loopback(client, ecrn, scrn)
        await loopback.send()  # Opens the connection: not counted.
        yield loopback


async def measure_send_delay(
    ecrn: list[str], scrn: list[str], samples: int = SEND_DELAY_SAMPLES
) -> int:
    """The fewest nanoseconds from calling send to the request's first byte (loopback)."""
    listener = _Listener()
    listener.start()
    delays: list[int] = []
    try:
        async with _loopback_client(listener.url, ecrn, scrn, _MEASURE_TIMEOUT_S) as loopback:
            for _ in range(samples):
                answer = await loopback.send()
                # The listener stamps a request before it answers it: the stamp is there.
                delays.append(listener.first_bytes[-1] - answer.sent_mono_ns)
                await anyio.sleep(_SAMPLE_SPACING_S)
    finally:
        listener.server.close()
        await anyio.to_thread.run_sync(listener.join, _LISTENER_TIMEOUT_S)
    return min(delays)


async def _answer_requests(stream: anyio.abc.SocketStream) -> None:
    """Answer each request on `stream` until the client goes."""
    http = h11.Connection(our_role=h11.SERVER)
    async with stream:
        while (answer := _next_answer(http)) is not None:
            if answer:
                await stream.send(answer)
            else:
                http.receive_data(await stream.receive())


async def _serve_quietly(listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
    # The shot runs inside this listener's task group: nothing met here may reach it.
    with contextlib.suppress(Exception):
        await listener.serve(_answer_requests)


@contextlib.asynccontextmanager
async def _served_listener() -> AsyncIterator[str]:
    """A loopback HTTP listener served by this event loop; its URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(_serve_quietly, listener)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tasks.cancel_scope.cancel()


# One loopback request through the shot's send path, given up at the deadline it was set for.
WarmUp = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    pass


@contextlib.asynccontextmanager
async def warm_send_path(
    ecrn: list[str], scrn: list[str], deadline_mono_ns: int
) -> AsyncIterator[WarmUp]:
    """A warm-up for a shot due after `deadline_mono_ns`; any failure costs only the warming."""
    loopbacks = contextlib.AsyncExitStack()
    warm_up: WarmUp = _nothing
    if time.monotonic_ns() < deadline_mono_ns - WARM_UP_SETUP_NS:
        try:
            url = await loopbacks.enter_async_context(_served_listener())
            loopback = await loopbacks.enter_async_context(
                _loopback_client(url, ecrn, scrn, _WARM_UP_TIMEOUT_S)
            )
        except (OSError, ObsError):
            await loopbacks.aclose()
        else:
            warm_up = functools.partial(loopback.warm_up, deadline_mono_ns)
    try:
        yield warm_up
    finally:
        # Closed after the shot: nothing here may keep its answer from being read.
        with contextlib.suppress(OSError, ObsError):
            await loopbacks.aclose()
