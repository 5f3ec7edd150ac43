"""Measuring our own call-to-wire delay: the same send path, aimed at a loopback listener.

A listener thread blocked in recv() stamps the first byte of each request with the
monotonic clock; the difference from the instant `ObsClient.send` was called is the delay the
fire instant must absorb (timing-notes.md: subtract its median).
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from typing import Final

import anyio

from obsd.adapters.obs_client import ObsClient

SEND_DELAY_SAMPLES: Final = 15
_RESPONSE: Final = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                    b"Content-Type: application/json\r\n\r\n{}")
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
            buffer = b""
            while True:
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if not buffer:
                    self.first_bytes.append(time.monotonic_ns())
                buffer += data
                while (request_end := _request_end(buffer)) is not None:
                    buffer = buffer[request_end:]
                    connection.sendall(_RESPONSE)


def _request_end(buffer: bytes) -> int | None:
    head_end = buffer.find(b"\r\n\r\n")
    if head_end == -1:
        return None
    length = 0
    for line in buffer[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    end = head_end + 4 + length
    return end if len(buffer) >= end else None


async def measure_send_delay(ecrn: list[str], scrn: list[str],
                             samples: int = SEND_DELAY_SAMPLES) -> int:
    """Median nanoseconds from calling send to the request's first byte arriving (loopback)."""
    listener = _Listener()
    listener.start()
    delays: list[int] = []
    try:
        async with ObsClient(listener.url, "measurement", read_timeout_s=5.0) as client:
            await client.send(client.prepare(ecrn, scrn))  # Opens the connection: not counted.
            for _ in range(samples):
                request = client.prepare(ecrn, scrn)
                answer = await client.send(request)
                await anyio.sleep(0.002)  # Let the listener's stamp land before reading it.
                delays.append(listener.first_bytes[-1] - answer.sent_mono_ns)
    finally:
        listener.server.close()
        await anyio.to_thread.run_sync(listener.join, _LISTENER_TIMEOUT_S)
    return int(statistics.median(delays))
