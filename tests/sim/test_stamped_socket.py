"""Sockets whose reads carry the kernel's receive time, on real loopback connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from obsd.sim.stamped_socket import StampedSocket, enable_stamps

REQUEST = b"POST /api/ders-kayit/v21 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"


@contextmanager
def connected_pair(*, stamp_listener: bool) -> Iterator[tuple[socket.socket, StampedSocket]]:
    """A client socket and the server's stamped end of the same loopback connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        if stamp_listener:
            assert enable_stamps(listener)
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with StampedSocket.adopt(accepted) as server:
                yield client, server


def send_timed(client: socket.socket, data: bytes) -> tuple[int, int]:
    """Send `data`; the wall clock just before the write and just after it returned."""
    before = time.time_ns()
    client.sendall(data)
    return before, time.time_ns()


@pytest.mark.parametrize("stamp_listener", [True, False])
def test_recv_returns_the_bytes_stamped_when_they_were_sent_not_when_read(
    stamp_listener: bool,
) -> None:
    with connected_pair(stamp_listener=stamp_listener) as (client, server):
        assert server.stamps_enabled
        before, after = send_timed(client, REQUEST)
        read_at = time.time_ns()
        assert server.recv(4096) == REQUEST
        # On loopback the kernel stamps the bytes inside the sender's write.
        assert server.received_wall_ns is not None
        assert before <= server.received_wall_ns <= after < read_at


def test_bytes_sent_before_the_accept_are_stamped_when_the_listener_asked() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        enable_stamps(listener)
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            before, after = send_timed(client, REQUEST)
            accepted, _ = listener.accept()
            with StampedSocket.adopt(accepted) as server:
                assert server.recv(4096) == REQUEST
                assert server.received_wall_ns is not None
                assert before <= server.received_wall_ns <= after


def test_recv_into_fills_the_buffer_and_keeps_the_stamp_of_each_read() -> None:
    with connected_pair(stamp_listener=True) as (client, server):
        buffer = bytearray(4096)
        stamps = []
        for part in (REQUEST[:10], REQUEST[10:]):
            before, after = send_timed(client, part)
            assert server.recv_into(buffer, len(part)) == len(part)
            assert buffer[: len(part)] == part
            assert server.received_wall_ns is not None
            assert before <= server.received_wall_ns <= after
            stamps.append(server.received_wall_ns)
        assert stamps[0] < stamps[1]


def test_the_end_of_input_keeps_the_last_stamp() -> None:
    with connected_pair(stamp_listener=True) as (client, server):
        client.sendall(REQUEST)
        assert server.recv(4096) == REQUEST
        stamp = server.received_wall_ns
        client.shutdown(socket.SHUT_WR)
        assert server.recv(4096) == b""
        assert server.received_wall_ns == stamp is not None
