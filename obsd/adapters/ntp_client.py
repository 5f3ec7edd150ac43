"""NTP queries over UDP: one datagram out, one back, stamped on the monotonic clock.

The packet is built and judged by obsd.core.ntp_packet; this module only moves the bytes and
says when they moved, so a test can stand a scripted exchange in its place. Each query runs
on a blocking socket in a worker thread: the receive stamp is taken the moment the datagram
is in, not when the event loop next gets round to it (that wait would widen the error bound
and skew the midpoint the engine dates its events by).
"""

from __future__ import annotations

import secrets
import socket
from typing import Final

import anyio
import anyio.to_thread

from obsd.adapters.clock import Clock
from obsd.core.config import split_host_port
from obsd.core.ntp_packet import encode_query
from obsd.core.time_sources import Exchange

# A reply later than this is not waited for: a far server answers well within it, and a
# silent one (UDP 123 blocked) must not hold a calibration up for long.
NTP_TIMEOUT_S: Final = 1.5
NTP_PORT: Final = 123
# Room for a reply with extension fields; anything longer is cut and judged as it is.
MAX_DATAGRAM: Final = 1024
# Name resolution has no timeout of its own (the resolver may retry for many seconds): the
# whole exchange is given up after this, and its thread left to finish on its own.
EXCHANGE_DEADLINE_S: Final = 3.0


def exchange_with(server: str, clock: Clock) -> Exchange:
    """Send one query to `server` and wait for its answer (or say why there is none)."""
    host, port = split_host_port(server)
    port = port or NTP_PORT
    cookie = secrets.randbits(64)
    sent = clock.mono_ns()
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_DGRAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(NTP_TIMEOUT_S)
            sock.connect(address)
            query = encode_query(cookie)
            sent = clock.mono_ns()
            sock.send(query)
            data = sock.recv(MAX_DATAGRAM)
            received = clock.mono_ns()
            # Read beside the stamp, before the close: closing lets go of the GIL, and taking
            # it back can cost milliseconds on a busy loop, all of which would show as offset.
            received_wall = clock.wall_ns()
    except TimeoutError:
        error = f"no answer within {NTP_TIMEOUT_S} s (is outgoing UDP port {port} open?)"
    except socket.gaierror as exc:
        error = f"cannot resolve {host}: {exc.strerror}"
    except OSError as exc:
        error = exc.strerror or str(exc)
    else:
        return Exchange(server, cookie, sent, received, received_wall, data)
    return Exchange(server, cookie, sent, clock.mono_ns(), clock.wall_ns(), None, error)


async def exchange_all(servers: list[str], clock: Clock) -> list[Exchange]:
    """One query to each server, all at once; the exchanges in the servers' order."""
    found: dict[str, Exchange] = {}

    async def one(server: str) -> None:
        began = clock.mono_ns()
        try:
            # A cancelled run does not wait out a silent server's timeout either.
            with anyio.fail_after(EXCHANGE_DEADLINE_S):
                found[server] = await anyio.to_thread.run_sync(
                    exchange_with, server, clock, abandon_on_cancel=True
                )
        except TimeoutError:
            error = f"no answer within {EXCHANGE_DEADLINE_S} s (name resolution or the network)"
            found[server] = Exchange(
                server, 0, began, clock.mono_ns(), clock.wall_ns(), None, error
            )

    async with anyio.create_task_group() as group:
        for server in servers:
            group.start_soon(one, server)
    return [found[server] for server in servers]
