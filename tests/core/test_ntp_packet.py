"""NTP packets as values: the query we send, and every way a reply is refused."""

from __future__ import annotations

import pytest

from obsd.core.ntp_packet import (
    MAX_ROOT_DISTANCE_NS,
    NTP_EPOCH_OFFSET_S,
    PACKET,
    Rejected,
    Reply,
    decode_reply,
    encode_query,
    from_ntp_timestamp,
    to_ntp_timestamp,
)
from obsd.core.timing import NS

COOKIE = 0x1234_5678_9ABC_DEF0
NOW = 1_796_115_600 * NS  # 2026-12-01
NTP_SHORT_SECOND = 1 << 16


def reply(
    *,
    leap: int = 0,
    version: int = 4,
    mode: int = 4,
    stratum: int = 2,
    precision: int = -20,
    root_delay: int = 0,
    root_dispersion: int = 0,
    refid: bytes = b"GPS\0",
    origin: int = COOKIE,
    receive: int | None = None,
    transmit: int | None = None,
) -> bytes:
    return PACKET.pack(
        (leap << 6) | (version << 3) | mode,
        stratum,
        6,
        precision,
        root_delay,
        root_dispersion,
        int.from_bytes(refid, "big"),
        to_ntp_timestamp(NOW),
        origin,
        to_ntp_timestamp(NOW) if receive is None else receive,
        to_ntp_timestamp(NOW + 1000) if transmit is None else transmit,
    )


def test_the_query_tells_the_server_nothing_but_a_cookie() -> None:
    first, stratum, poll, precision, delay, dispersion, refid, ref, origin, rx, tx = PACKET.unpack(
        encode_query(COOKIE)
    )
    assert (first >> 6, first >> 3 & 7, first & 7) == (0, 4, 3)
    assert (stratum, poll, precision, delay, dispersion, refid, ref, origin, rx) == (0,) * 9
    assert tx == COOKIE


def test_timestamps_convert_both_ways_and_across_the_2036_era() -> None:
    assert abs(from_ntp_timestamp(to_ntp_timestamp(NOW), NOW) - NOW) <= 1
    assert to_ntp_timestamp(0) == NTP_EPOCH_OFFSET_S << 32
    after_2036 = 2_200_000_000 * NS
    assert abs(from_ntp_timestamp(to_ntp_timestamp(after_2036), after_2036) - after_2036) <= 1


def test_a_good_reply_gives_its_stamps_and_distances() -> None:
    decoded = decode_reply(
        reply(root_delay=NTP_SHORT_SECOND // 100, root_dispersion=NTP_SHORT_SECOND // 1000),
        COOKIE,
        NOW,
    )
    assert isinstance(decoded, Reply)
    assert abs(decoded.receive_ns - NOW) <= 1 and abs(decoded.transmit_ns - NOW - 1000) <= 1
    # 16.16 fixed point: 655/65536 s of delay (about 10 ms), 65/65536 s of dispersion.
    assert decoded.root_distance_ns == (655 * NS >> 16) // 2 + (65 * NS >> 16)
    assert decoded.precision_ns == NS >> 20 and decoded.stratum == 2


@pytest.mark.parametrize(
    ("data", "unusable", "reason"),
    [
        (reply()[:47], "invalid", "a 47-byte datagram is not an NTP packet"),
        (reply(mode=3), "invalid", "not a server reply (mode 3)"),
        (reply(version=0), "invalid", "unknown NTP version 0"),
        (reply(version=5), "invalid", "unknown NTP version 5"),
        (reply(origin=COOKIE + 1), "invalid", "does not answer our query"),
        (reply(stratum=0, refid=b"RATE"), "kiss", "kiss-o'-death RATE"),
        (reply(stratum=0, refid=b"DENY"), "kiss", "denies us access"),
        (reply(stratum=0, refid=b"XYZW"), "kiss", "an unknown kiss code"),
        (reply(leap=3), "unsynchronised", "not synchronised (leap 3, stratum 2)"),
        (reply(stratum=16), "unsynchronised", "not synchronised (leap 0, stratum 16)"),
        (reply(receive=0), "invalid", "no receive or transmit timestamp"),
        (reply(transmit=0), "invalid", "no receive or transmit timestamp"),
        (
            reply(transmit=to_ntp_timestamp(NOW - NS)),
            "invalid",
            "left the server before our query arrived",
        ),
        (reply(precision=1), "invalid", "precision is 2^1 s"),
        (
            reply(root_dispersion=2 * NTP_SHORT_SECOND),
            "unsynchronised",
            "2.00 s from its reference clock",
        ),
        (bytes(48), "invalid", "not a server reply (mode 0)"),
    ],
)
def test_every_failed_sanity_test_is_named(data: bytes, unusable: str, reason: str) -> None:
    decoded = decode_reply(data, COOKIE, NOW)
    assert isinstance(decoded, Rejected)
    assert decoded.unusable == unusable and reason in decoded.reason


def test_the_root_distance_limit_is_rfc_5905s() -> None:
    assert MAX_ROOT_DISTANCE_NS == 1_500_000_000
    at_limit = reply(root_dispersion=NTP_SHORT_SECOND * 3 // 2)
    assert isinstance(decode_reply(at_limit, COOKIE, NOW), Reply)


def test_a_kiss_names_its_code() -> None:
    decoded = decode_reply(reply(stratum=0, refid=b"RSTR"), COOKIE, NOW)
    assert isinstance(decoded, Rejected) and decoded.kiss_code == "RSTR"
