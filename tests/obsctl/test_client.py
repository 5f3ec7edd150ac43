"""The blocking client against a peer that goes away: every failure is a ClientError, never a
raw OSError escaping to a script or to obsctl's caller."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from obsctl.client import Client, ClientError

GREETING = b'{"id":null,"success":true,"data":{"server":"obsd"}}\n'


def greet_then_close(path: Path) -> threading.Thread:
    """A server that greets one client, then closes its end: what a killed daemon looks like."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        with listener:
            peer, _ = listener.accept()
            with peer:
                peer.sendall(GREETING)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_request_to_a_daemon_that_died_after_the_greeting_is_a_client_error(
    short_dir: Path,
) -> None:
    path = short_dir / "obsd.sock"
    server = greet_then_close(path)
    with Client(path, timeout=10) as client:
        server.join(10)
        assert not server.is_alive()
        with pytest.raises(ClientError, match=r"connection to obsd failed|closed the connection"):
            # The first send may still be buffered; the second one meets the closed peer.
            client.request("status")
            client.request("status")


def test_a_send_to_a_closed_peer_names_the_broken_connection(short_dir: Path) -> None:
    path = short_dir / "obsd.sock"
    server = greet_then_close(path)
    with Client(path, timeout=10) as client:
        server.join(10)
        client._socket.shutdown(socket.SHUT_RD)  # the peer is gone: only the send can fail
        with pytest.raises(ClientError, match=r"^connection to obsd failed: Broken pipe$"):
            client.request("status")
