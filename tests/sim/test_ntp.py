"""The NTP responders: packets as pure functions, and real clients against the running ones."""

from __future__ import annotations

import socket
import struct

import ntplib
import pytest

from obsd.core.ntp_packet import Rejected, Reply, decode_reply, encode_query, from_ntp_timestamp
from obsd.sim import NtpBehaviour, SimConfig, Simulator
from obsd.sim.ntp import NtpQuery, build_reply, parse_query

S = 1_000_000_000
COOKIE = 0x1234_5678_9ABC_DEF0
NOW = 1_770_120_000 * S


def client_packet(version: int = 3, mode: int = 3, transmit: int = COOKIE) -> bytes:
    return struct.pack("!BBBb3I4Q", (version << 3) | mode, 0, 6, 0, 0, 0, 0, 0, 0, 0, transmit)


def test_a_client_query_is_parsed() -> None:
    assert parse_query(client_packet(version=4)) == NtpQuery(version=4, poll=6, transmit=COOKIE)


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
    receive_ns, transmit_ns = NOW + 250, NOW + 90_000
    fields = struct.unpack("!BBBb3I4Q", build_reply(query, receive_ns, transmit_ns))
    first, stratum, poll, *_, origin, receive, transmit = fields
    assert (first >> 3 & 7, first & 7, stratum, poll) == (3, 4, 1, 6)
    assert origin == COOKIE
    assert abs(from_ntp_timestamp(receive, NOW) - receive_ns) <= 1
    assert abs(from_ntp_timestamp(transmit, NOW) - transmit_ns) <= 1


@pytest.mark.parametrize("offset_s", [3600.0, -2.5])
def test_ntplib_sees_the_configured_offset(offset_s: float) -> None:
    """An independent client agrees with the simulator (and so with obsd's own decoding)."""
    with Simulator(SimConfig(clock_offset_s=offset_s, server_skew_s=0.25)).serve_in_thread() as sim:
        host, port = sim.ntp_server.rsplit(":", 1)
        stats = ntplib.NTPClient().request(host, port=int(port), version=3, timeout=5)
    # NTP serves true time: the server's own skew must not show.
    assert abs(stats.offset - offset_s) < 0.005
    assert stats.stratum == 1 and stats.mode == 4


def ask(server: str) -> bytes | None:
    """One query to a running responder; its answer, or None after a short wait."""
    host, port = server.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(encode_query(COOKIE), (host, int(port)))
        try:
            return sock.recv(1024)
        except TimeoutError:
            return None


def test_each_responder_behaves_as_scripted_and_every_query_is_logged() -> None:
    behaviours = [
        NtpBehaviour(),
        NtpBehaviour(lie_s=-10.0),
        NtpBehaviour(kind="kiss", kiss_code="RATE"),
        NtpBehaviour(kind="unsynchronised"),
        NtpBehaviour(kind="garbage"),
        NtpBehaviour(kind="silent"),
        NtpBehaviour(delay_s=0.2),
    ]
    with Simulator(SimConfig(ntp=behaviours)).serve_in_thread() as sim:
        now = sim.true_time_ns()
        answers = [ask(server) for server in sim.ntp_servers[:2]]
        answers += [ask(server) for server in sim.ntp_servers[2:]]
        logged = [arrival.server for arrival in sim.ntp_queries()]
    assert logged == list(range(len(behaviours)))
    honest, liar, kiss, unsynchronised, garbage, silent, slow = (
        None if data is None else decode_reply(data, COOKIE, now) for data in answers
    )
    assert isinstance(honest, Reply) and abs(honest.transmit_ns - now) < S // 10
    assert isinstance(liar, Reply) and abs(liar.transmit_ns - now + 10 * S) < S // 10
    assert isinstance(kiss, Rejected) and kiss.kiss_code == "RATE"
    assert isinstance(unsynchronised, Rejected) and unsynchronised.unusable == "unsynchronised"
    assert isinstance(garbage, Rejected) and garbage.unusable == "invalid"
    assert silent is None
    # The slow one stamps the middle of its 0.2 s path, so the offset it implies is honest.
    assert isinstance(slow, Reply) and slow.receive_ns == slow.transmit_ns


def test_true_time_steps_once_at_the_scripted_moment() -> None:
    config = SimConfig(true_step_at=0.0, true_step_s=2.0)
    with Simulator(config).serve_in_thread() as sim:
        host, port = sim.ntp_server.rsplit(":", 1)
        stats = ntplib.NTPClient().request(host, port=int(port), version=3, timeout=5)
    assert abs(stats.offset - 2.0) < 0.005


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
