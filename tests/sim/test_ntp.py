"""The NTP responder: packets as pure functions, and ntplib against the running simulator."""

from __future__ import annotations

import socket
import struct

import ntplib
import pytest

from obsd.sim import SimConfig, Simulator
from obsd.sim.ntp import (
    NTP_EPOCH_OFFSET_S,
    NtpQuery,
    build_reply,
    from_ntp_timestamp,
    parse_query,
    to_ntp_timestamp,
)

S = 1_000_000_000


def client_packet(version: int = 3, mode: int = 3, transmit: int = 0x1234_5678_9ABC_DEF0) -> bytes:
    return struct.pack("!BBBb3I4Q", (version << 3) | mode, 0, 6, 0, 0, 0, 0, 0, 0, 0, transmit)


def test_timestamps_convert_both_ways_to_the_nanosecond() -> None:
    epoch_ns = 1_770_120_000_123_456_789
    assert abs(from_ntp_timestamp(to_ntp_timestamp(epoch_ns)) - epoch_ns) <= 1
    assert to_ntp_timestamp(0) == NTP_EPOCH_OFFSET_S << 32


def test_a_client_query_is_parsed() -> None:
    assert parse_query(client_packet(version=4)) == NtpQuery(
        version=4, poll=6, transmit=0x1234_5678_9ABC_DEF0
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        client_packet()[:47],
        client_packet(mode=4),
        client_packet(mode=1),
        client_packet(version=0),
    ],
)
def test_anything_but_a_client_query_is_ignored(data: bytes) -> None:
    assert parse_query(data) is None


def test_the_reply_echoes_the_client_transmit_as_origin() -> None:
    query = parse_query(client_packet())
    assert query is not None
    receive_ns, transmit_ns = 1_770_120_000 * S + 250, 1_770_120_000 * S + 90_000
    (
        first,
        stratum,
        poll,
        _precision,
        _delay,
        _dispersion,
        _ref_id,
        _reference,
        origin,
        receive,
        transmit,
    ) = struct.unpack("!BBBb3I4Q", build_reply(query, receive_ns, transmit_ns))
    assert (first >> 3 & 7, first & 7, stratum, poll) == (3, 4, 1, 6)
    assert origin == 0x1234_5678_9ABC_DEF0
    assert abs(from_ntp_timestamp(receive) - receive_ns) <= 1
    assert abs(from_ntp_timestamp(transmit) - transmit_ns) <= 1


@pytest.mark.parametrize("offset_s", [3600.0, -2.5])
def test_ntplib_sees_the_configured_offset(offset_s: float) -> None:
    with Simulator(SimConfig(clock_offset_s=offset_s, server_skew_s=0.25)).serve_in_thread() as sim:
        host, port = sim.ntp_server.rsplit(":", 1)
        stats = ntplib.NTPClient().request(host, port=int(port), version=3, timeout=5)
    # NTP serves true time: the server's own skew must not show.
    assert abs(stats.offset - offset_s) < 0.005
    assert stats.stratum == 1 and stats.mode == 4


def test_ntp_over_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with Simulator(SimConfig(clock_offset_s=1.0)).serve_in_thread(host="::1") as sim:
            assert sim.ntp_server.startswith("[::1]:") and sim.base_url.startswith("http://[::1]:")
            port = int(sim.ntp_server.rsplit(":", 1)[1])
            stats = ntplib.NTPClient().request("::1", port=port, version=4, timeout=5)
    except OSError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    assert abs(stats.offset - 1.0) < 0.005
