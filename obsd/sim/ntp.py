"""NTP servers (RFC 5905, mode 4) answering from the simulator's true time, each as scripted.

An honest responder serves true time, never the OBS server's skewed clock: a client that fires
by NTP is as right as real NTP would make it, and one that trusts its local clock is off by
the offset. The others are the servers a VPS really meets: a liar, a slow one, one that sends
kiss-o'-death, one whose clock is unsynchronised, one that sends garbage, one that is silent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final, cast

import msgspec

from obsd.core.ntp_packet import (
    CLIENT_MODE,
    LEAP_ALARM,
    PACKET,
    SERVER_MODE,
    to_ntp_timestamp,
)
from obsd.core.timing import NS
from obsd.sim.clock import SimClock
from obsd.sim.config import NtpBehaviour

# A primary server, as if disciplined by a reference clock.
_STRATUM: Final = 1
# log2 seconds: about a microsecond, the resolution of time.time_ns() reads.
_PRECISION: Final = -20
_REFERENCE_ID: Final = int.from_bytes(b"SIM\0", "big")
_UNSYNCHRONISED_STRATUM: Final = 16
# What the garbage responder sends: 48 bytes that decode to nonsense.
_GARBAGE: Final = bytes(range(48))


@dataclass(frozen=True, slots=True)
class NtpQuery:
    """What a reply needs from a client's request."""

    version: int
    poll: int
    transmit: int


class NtpArrival(msgspec.Struct, frozen=True):
    """A query as a responder saw it: which responder, and when (true time).

    `mono_ns` is this host's monotonic clock at the arrival: the spacing of a client's
    queries on it does not move when true time is stepped under them.
    """

    server: int
    true_ns: int
    mono_ns: int = 0


def parse_query(data: bytes) -> NtpQuery | None:
    """The client request in `data`, or None if it is not one (it is then ignored)."""
    if len(data) < PACKET.size:
        return None
    first, _stratum, poll, *_rest, transmit = PACKET.unpack_from(data)
    version, mode = (first >> 3) & 0x7, first & 0x7
    if mode != CLIENT_MODE or not 1 <= version <= 4:
        return None
    return NtpQuery(version=version, poll=poll, transmit=transmit)


def build_reply(
    query: NtpQuery,
    receive_ns: int,
    transmit_ns: int,
    *,
    leap: int = 0,
    stratum: int = _STRATUM,
    reference_id: int = _REFERENCE_ID,
) -> bytes:
    """A server reply: origin = the client's transmit timestamp, then our receive/transmit."""
    return PACKET.pack(
        (leap << 6) | (query.version << 3) | SERVER_MODE,
        stratum,
        query.poll,
        _PRECISION,
        0,
        1,
        reference_id,  # root delay 0, root dispersion 1/65536 s
        to_ntp_timestamp(receive_ns - receive_ns % NS),
        query.transmit,
        to_ntp_timestamp(receive_ns),
        to_ntp_timestamp(transmit_ns),
    )


def reply_for(
    behaviour: NtpBehaviour, query: NtpQuery, receive_ns: int, transmit_ns: int
) -> bytes | None:
    """What a responder of this behaviour answers (None: nothing at all)."""
    lie = round(behaviour.lie_s * NS)
    match behaviour.kind:
        case "silent":
            return None
        case "garbage":
            return _GARBAGE
        case "kiss":
            code = int.from_bytes(behaviour.kiss_code.encode().ljust(4, b"\0"), "big")
            return build_reply(query, 0, 0, stratum=0, reference_id=code)
        case "unsynchronised":
            return build_reply(
                query,
                receive_ns + lie,
                transmit_ns + lie,
                leap=LEAP_ALARM,
                stratum=_UNSYNCHRONISED_STRATUM,
            )
        case _:
            return build_reply(query, receive_ns + lie, transmit_ns + lie)


class NtpResponder(asyncio.DatagramProtocol):
    """Answers client requests as its behaviour says, and records each arrival."""

    def __init__(
        self, clock: SimClock, behaviour: NtpBehaviour, index: int, log: list[NtpArrival]
    ) -> None:
        self._clock = clock
        self._behaviour = behaviour
        self._index = index
        self._log = log
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the socket to answer on."""
        # Not an asyncio.DatagramTransport subclass on every Python, though it is one in kind.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """Stamp the arrival first, then answer (after the scripted path delay)."""
        arrived_ns = self._clock.true_ns()
        query = parse_query(data)
        if query is None:
            return
        self._log.append(NtpArrival(self._index, arrived_ns, time.monotonic_ns()))
        delay = self._behaviour.delay_s
        if delay <= 0:
            self._answer(query, addr, arrived_ns, self._clock.true_ns())
            return
        # A path delay: the query reaches the server halfway through it, the reply takes the
        # rest, and the server's stamps are honest about both.
        middle = arrived_ns + round(delay * NS / 2)
        asyncio.get_running_loop().call_later(delay, self._answer, query, addr, middle, middle)

    def _answer(
        self, query: NtpQuery, addr: tuple[str | int, ...], receive_ns: int, transmit_ns: int
    ) -> None:
        reply = reply_for(self._behaviour, query, receive_ns, transmit_ns)
        if reply is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier reply; the client is gone, nothing to do."""


async def start_ntp(
    clock: SimClock,
    host: str,
    behaviour: NtpBehaviour,
    index: int,
    log: list[NtpArrival],
    port: int = 0,
) -> tuple[asyncio.DatagramTransport, int]:
    """Listen for NTP on `host:port` (0 = any free port); return the transport and the port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: NtpResponder(clock, behaviour, index, log), local_addr=(host, port)
    )
    return transport, int(transport.get_extra_info("sockname")[1])
