"""NTP on the wire (RFC 5905 §7.3), sans I/O: a client's query, and a server's reply checked.

The query carries a random cookie where a client would put its clock (the data-minimisation
practice of current NTP clients): the server learns nothing of our time, and only an answer to
this very query can echo the cookie back. The reply must pass the sanity tests of RFC 5905
§8 and RFC 4330 §5 before any of its timestamps is believed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Literal

from obsd.core.timing import NS

NTP_EPOCH_OFFSET_S: Final = 2_208_988_800  # 1900-01-01 to 1970-01-01
PACKET: Final = struct.Struct("!BBBb3I4Q")
CLIENT_MODE: Final = 3
SERVER_MODE: Final = 4
VERSION: Final = 4
# Leap indicator 3 is the alarm condition: the server's own clock is not synchronised.
LEAP_ALARM: Final = 3
# Stratum 0 is a kiss-o'-death packet; 16 and above mean unsynchronised.
MAX_STRATUM: Final = 15
# RFC 5905's MAXDIST: a server this far (root delay / 2 + root dispersion) from its reference
# clock cannot help to place one instant.
MAX_ROOT_DISTANCE_NS: Final = 1_500_000_000
_ERA_NS: Final = (1 << 32) * NS
_TIMESTAMP_MASK: Final = (1 << 64) - 1

# What the kiss codes a client meets mean (RFC 5905 §7.4).
KISS_CODES: Final = {
    "RATE": "asks us to query less often",
    "DENY": "denies us access",
    "RSTR": "restricts our access",
    "INIT": "is not synchronised yet",
    "STEP": "is stepping its clock",
}
# After these a server is not asked again for a long while.
REFUSING_KISS_CODES: Final = frozenset({"DENY", "RSTR"})

Unusable = Literal["invalid", "kiss", "unsynchronised"]


def to_ntp_timestamp(epoch_ns: int) -> int:
    """Unix nanoseconds as a 64-bit NTP timestamp (32.32 fixed point since 1900, any era)."""
    return (((epoch_ns + NTP_EPOCH_OFFSET_S * NS) << 32) // NS) & _TIMESTAMP_MASK


def from_ntp_timestamp(timestamp: int, near_ns: int) -> int:
    """A 64-bit NTP timestamp as Unix nanoseconds, in the era nearest to `near_ns`."""
    in_era = ((timestamp * NS) >> 32) - NTP_EPOCH_OFFSET_S * NS
    eras = round((near_ns - in_era) / _ERA_NS)
    return in_era + eras * _ERA_NS


def short_ns(value: int) -> int:
    """An NTP short (16.16 fixed-point seconds) as nanoseconds."""
    return (value * NS) >> 16


def encode_query(cookie: int) -> bytes:
    """A client (mode 3) query whose transmit timestamp is `cookie` (64 random bits)."""
    return PACKET.pack((VERSION << 3) | CLIENT_MODE, 0, 0, 0, 0, 0, 0, 0, 0, 0, cookie)


@dataclass(frozen=True, slots=True)
class Reply:
    """A server's reply that passed every sanity test; times in Unix ns of the server's clock."""

    stratum: int
    precision: int  # log2 seconds
    root_delay_ns: int
    root_dispersion_ns: int
    receive_ns: int  # T2: when our query arrived
    transmit_ns: int  # T3: when the reply left

    @property
    def root_distance_ns(self) -> int:
        """How far the server may be from its reference clock (RFC 5905 §11.2.1)."""
        return self.root_delay_ns // 2 + self.root_dispersion_ns

    @property
    def precision_ns(self) -> int:
        """The server's clock resolution."""
        return NS >> -self.precision if self.precision < 0 else NS << self.precision


@dataclass(frozen=True, slots=True)
class Rejected:
    """A reply that must not be used: `unusable` says how, `reason` says why, for people."""

    unusable: Unusable
    reason: str
    kiss_code: str | None = None


def decode_reply(data: bytes, cookie: int, near_ns: int) -> Reply | Rejected:
    """Check a datagram against the query it should answer; `near_ns` resolves the NTP era."""
    if len(data) < PACKET.size:
        return Rejected("invalid", f"a {len(data)}-byte datagram is not an NTP packet")
    first, stratum, _poll, precision, delay, dispersion, refid, _ref, origin, receive, transmit = (
        PACKET.unpack_from(data)
    )
    leap, version, mode = first >> 6, (first >> 3) & 0x7, first & 0x7
    if mode != SERVER_MODE:
        return Rejected("invalid", f"not a server reply (mode {mode})")
    if not 1 <= version <= 4:
        return Rejected("invalid", f"unknown NTP version {version}")
    if origin != cookie:
        return Rejected("invalid", "the reply does not answer our query (origin mismatch)")
    if stratum == 0:
        code = refid.to_bytes(4, "big").rstrip(b"\0").decode("ascii", "replace")
        meaning = KISS_CODES.get(code, "sent an unknown kiss code")
        return Rejected("kiss", f"kiss-o'-death {code}: the server {meaning}", kiss_code=code)
    if leap == LEAP_ALARM or stratum > MAX_STRATUM:
        return Rejected(
            "unsynchronised", f"the server is not synchronised (leap {leap}, stratum {stratum})"
        )
    if receive == 0 or transmit == 0:
        return Rejected("invalid", "the reply has no receive or transmit timestamp")
    if precision > 0:
        return Rejected("invalid", f"the server's precision is 2^{precision} s")
    reply = Reply(
        stratum=stratum,
        precision=precision,
        root_delay_ns=short_ns(delay),
        root_dispersion_ns=short_ns(dispersion),
        receive_ns=from_ntp_timestamp(receive, near_ns),
        transmit_ns=from_ntp_timestamp(transmit, near_ns),
    )
    if reply.transmit_ns < reply.receive_ns:
        return Rejected("invalid", "the reply left the server before our query arrived")
    if reply.root_distance_ns > MAX_ROOT_DISTANCE_NS:
        return Rejected(
            "unsynchronised",
            f"the server is {reply.root_distance_ns / NS:.2f} s from its reference clock",
        )
    return reply
