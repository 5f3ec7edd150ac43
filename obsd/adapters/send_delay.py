"""Measuring our own call-to-wire delay: the same send path, aimed at a loopback listener.

A listener thread blocked in recv() stamps the first byte of each request with the
monotonic clock; the difference from the instant `ObsClient.send` was called is the delay the
fire instant must absorb. The *fastest* sample is what is subtracted, not the median: the
listener's wake-up (the GIL, the scheduler) only ever adds to a sample, and a median that
overstates the real path by a millisecond would send the first byte that much before the fire
instant (the bench saw -1.2 ms with the median). The listener parses requests with h11, as a
server would.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Final

import anyio
import h11

from obsd.adapters.clock import SystemClock
from obsd.adapters.obs_client import ObsClient

SEND_DELAY_SAMPLES: Final = 15
_ANSWER: Final = b"{}"
# Samples are taken a little apart, not back to back: the shot follows a quiet moment too.
_SAMPLE_SPACING_S: Final = 0.002
# A listener that hears nothing for this long has lost its client; it gives up.
_LISTENER_TIMEOUT_S: Final = 10.0


class _Listener(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="obsd-send-delay", daemon=True)
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
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if http.their_state is h11.IDLE and data:
                    self.first_bytes.append(time.monotonic_ns())
                http.receive_data(data)
                if not data:
                    return
            elif isinstance(event, h11.EndOfMessage):
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(_ANSWER))),
                ]
                connection.sendall(
                    http.send(h11.Response(status_code=200, headers=headers))
                    + http.send(h11.Data(data=_ANSWER))
                    + http.send(h11.EndOfMessage())
                )
                http.start_next_cycle()
            elif event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return


async def measure_send_delay(
    ecrn: list[str], scrn: list[str], samples: int = SEND_DELAY_SAMPLES
) -> int:
    """The fewest nanoseconds from calling send to the request's first byte (loopback)."""
    listener = _Listener()
    listener.start()
    delays: list[int] = []
    try:
        async with ObsClient(listener.url, "measurement", 5.0, SystemClock()) as client:
            await client.send(client.prepare(ecrn, scrn))  # Opens the connection: not counted.
            for _ in range(samples):
                # The listener stamps a request before it answers it: the stamp is there.
                answer = await client.send(client.prepare(ecrn, scrn))
                delays.append(listener.first_bytes[-1] - answer.sent_mono_ns)
                await anyio.sleep(_SAMPLE_SPACING_S)
    finally:
        listener.server.close()
        await anyio.to_thread.run_sync(listener.join, _LISTENER_TIMEOUT_S)
    return min(delays)
