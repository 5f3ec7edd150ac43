"""A blocking client of the control socket: greeting, requests, and the lines of a tail."""

from __future__ import annotations

import itertools
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

RECEIVE_BYTES = 64 * 1024


class ClientError(Exception):
    """The daemon could not be reached or broke the protocol (exit status 1)."""


_POINT_AT_IT: Final = "point --socket (or $OBSD_SOCKET) at obsd's socket"


def _connect_problem(path: Path, exc: OSError, service: str) -> str:
    """Why connecting to `path` (the socket of systemd's `service`) failed, and what to do."""
    start_it = f"start it (sudo systemctl start {service}, or obsd run)"
    if isinstance(exc, FileNotFoundError):
        if not path.parent.is_dir():
            return f"{service} is not running: there is no directory {path.parent}; {_POINT_AT_IT}"
        return f"{service} is not running: no socket at {path}; {start_it}"
    if isinstance(exc, ConnectionRefusedError):
        if not stat.S_ISSOCK(_mode(path)):
            return f"{path} is not a socket; {_POINT_AT_IT}"
        return f"{service} is not running: nothing listens on {path}; {start_it}"
    if isinstance(exc, PermissionError):
        group = service.replace("@", "-")  # obsd@bob.service runs as, and admits, group obsd-bob
        return (
            f"no permission to connect to {path}: ask to be added to the {group} group "
            f"(sudo usermod -aG {group} $USER, then log in again)"
        )
    if isinstance(exc, NotADirectoryError):
        return f"{path}: a part of the path is not a directory; {_POINT_AT_IT}"
    if isinstance(exc, TimeoutError):
        return f"obsd did not accept the connection on {path} in time"
    return f"cannot connect to {path}: {exc.strerror or exc}"


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except OSError:
        return 0


class Client:
    """One connection to obsd; `greeting` holds the server's first line."""

    def __init__(self, path: Path, timeout: float | None = 30.0, service: str = "obsd") -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(str(path))
        except OSError as exc:
            self._socket.close()
            raise ClientError(_connect_problem(path, exc, service)) from None
        self._buffer = b""
        self._ids = itertools.count(1)
        first = self.read_message()
        if first.get("success") is False:
            # Refused in place of the greeting (too many connections): say why.
            self._socket.close()
            error = first.get("error") or {}
            raise ClientError(f"obsd refused the connection: {error.get('message', first)}")
        self.greeting: dict[str, Any] = first["data"]

    def close(self) -> None:
        """Close the connection."""
        self._socket.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_line(self) -> bytes:
        """The next line the daemon sent, without its newline."""
        while (newline := self._buffer.find(b"\n")) == -1:
            try:
                data = self._socket.recv(RECEIVE_BYTES)
            except TimeoutError:
                raise ClientError("obsd did not answer in time") from None
            except OSError as exc:
                raise ClientError(f"connection to obsd failed: {exc.strerror}") from None
            if not data:
                raise ClientError("obsd closed the connection")
            self._buffer += data
        line, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
        return line

    def read_message(self) -> dict[str, Any]:
        """The next line, decoded as a JSON object."""
        line = self.read_line()
        try:
            message = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise ClientError(f"obsd sent a line that is not JSON: {line[:80]!r}") from None
        if not isinstance(message, dict):
            raise ClientError(f"obsd sent a line that is not an object: {line[:80]!r}")
        return message

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its response envelope."""
        request_id = next(self._ids)
        line = msgspec.json.encode({"id": request_id, "op": op, **fields}) + b"\n"
        try:
            self._socket.sendall(line)
        except TimeoutError:
            raise ClientError("obsd did not take the request in time") from None
        except OSError as exc:
            raise ClientError(f"connection to obsd failed: {exc.strerror}") from None
        while True:
            message = self.read_message()
            if message.get("id") == request_id and "success" in message:
                return message

    def stream(self, deadline: float | None = None) -> Iterator[bytes]:
        """Every further line: until the `time.monotonic()` deadline, else as long as it takes.

        Past the deadline the next read raises ClientError ("did not answer in time").
        """
        while True:
            if deadline is None:
                self._socket.settimeout(None)
            else:
                # A timeout of 0 would make the socket non-blocking, not time out at once.
                self._socket.settimeout(max(deadline - time.monotonic(), 1e-6))
            yield self.read_line()
