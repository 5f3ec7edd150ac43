"""An NTP server (RFC 5905, mode 4) answering with the simulator's true time.

Only the true time is served, never the server's skewed clock: a client that fires by NTP is
as right as real NTP would make it, and one that trusts its local clock is off by the offset.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Final, cast

from obsd.core.timing import NS
from obsd.sim.clock import SimClock

NTP_EPOCH_OFFSET_S: Final = 2_208_988_800  # 1900-01-01 to 1970-01-01
_PACKET: Final = struct.Struct("!BBBb3I4Q")
_CLIENT_MODE: Final = 3
_SERVER_MODE: Final = 4
# A primary server, as if disciplined by a reference clock.
_STRATUM: Final = 1
# log2 seconds: about a microsecond, the resolution of time.time_ns() reads.
_PRECISION: Final = -20
_REFERENCE_ID: Final = int.from_bytes(b"SIM\0", "big")
_TIMESTAMP_MASK: Final = (1 << 64) - 1


def to_ntp_timestamp(epoch_ns: int) -> int:
    """Unix nanoseconds as a 64-bit NTP timestamp (32.32 fixed point since 1900, era 0)."""
    # The mask wraps into era 1 after 2036 as NTP does; clients resolve the era themselves.
    return (((epoch_ns + NTP_EPOCH_OFFSET_S * NS) << 32) // NS) & _TIMESTAMP_MASK


def from_ntp_timestamp(timestamp: int) -> int:
    """A 64-bit NTP timestamp as Unix nanoseconds."""
    return ((timestamp * NS) >> 32) - NTP_EPOCH_OFFSET_S * NS


@dataclass(frozen=True, slots=True)
class NtpQuery:
    """What a reply needs from a client's request."""

    version: int
    poll: int
    transmit: int


def parse_query(data: bytes) -> NtpQuery | None:
    """The client request in `data`, or None if it is not one (it is then ignored)."""
    if len(data) < _PACKET.size:
        return None
    first, _stratum, poll, *_rest, transmit = _PACKET.unpack_from(data)
    version, mode = (first >> 3) & 0x7, first & 0x7
    if mode != _CLIENT_MODE or not 1 <= version <= 4:
        return None
    return NtpQuery(version=version, poll=poll, transmit=transmit)


def build_reply(query: NtpQuery, receive_ns: int, transmit_ns: int) -> bytes:
    """A server reply: origin = the client's transmit timestamp, then our receive/transmit."""
    return _PACKET.pack(
        (query.version << 3) | _SERVER_MODE,
        _STRATUM,
        query.poll,
        _PRECISION,
        0,
        1,
        _REFERENCE_ID,  # root delay 0, root dispersion 1/65536 s
        to_ntp_timestamp(receive_ns - receive_ns % NS),
        query.transmit,
        to_ntp_timestamp(receive_ns),
        to_ntp_timestamp(transmit_ns),
    )


class NtpResponder(asyncio.DatagramProtocol):
    """Answers every client request with the simulator's true time."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the socket to answer on."""
        # Not an asyncio.DatagramTransport subclass on every Python, though it is one in kind.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """Stamp the arrival first, then answer."""
        receive_ns = self._clock.true_ns()
        query = parse_query(data)
        if query is None or self._transport is None:
            return
        self._transport.sendto(build_reply(query, receive_ns, self._clock.true_ns()), addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier reply; the client is gone, nothing to do."""


async def start_ntp(clock: SimClock, host: str, port: int) -> tuple[asyncio.DatagramTransport, int]:
    """Listen for NTP on `host:port` (0 = any free port); return the transport and the port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: NtpResponder(clock), local_addr=(host, port)
    )
    return transport, int(transport.get_extra_info("sockname")[1])
