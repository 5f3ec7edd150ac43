"""A trivial newline-framed anyio echo server on a Unix socket: the round-trip floor for obsd."""

from __future__ import annotations

import contextlib
import sys
from typing import Final

import anyio
import anyio.abc

# The same receive size as obsd's control connections, so both read the socket alike.
RECEIVE_BYTES: Final = 64 * 1024
# Sent on connect like obsd's greeting, so clients (and readiness probes) treat both alike.
GREETING: Final = b'{"id":null,"success":true,"data":{"server":"echo"}}\n'


async def echo_lines(stream: anyio.abc.SocketStream) -> None:
    """Greet, then send every complete line back unchanged until the peer goes away."""
    async with stream:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await stream.send(GREETING)
            pending = b""
            while True:
                pending += await stream.receive(RECEIVE_BYTES)
                cut = pending.rfind(b"\n") + 1
                if cut:
                    await stream.send(pending[:cut])
                    pending = pending[cut:]


async def serve(path: str) -> None:
    """Listen on `path` and echo for every client until killed."""
    listener = await anyio.create_unix_listener(path)
    await listener.serve(echo_lines)


if __name__ == "__main__":
    anyio.run(serve, sys.argv[1])
