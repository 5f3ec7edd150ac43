"""A blocking client of the control socket: greeting, requests, and the lines of a tail."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

RECEIVE_BYTES = 64 * 1024


class ClientError(Exception):
    """The daemon could not be reached or broke the protocol (exit status 1)."""


class Client:
    """One connection to obsd; `greeting` holds the server's first line."""

    def __init__(self, path: Path, timeout: float | None = 30.0) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(str(path))
        except FileNotFoundError:
            self._socket.close()
            raise ClientError(f"obsd is not running: no socket at {path}") from None
        except ConnectionRefusedError:
            self._socket.close()
            raise ClientError(f"obsd is not running: nothing listens on {path}") from None
        except PermissionError:
            self._socket.close()
            raise ClientError(f"no permission to connect to {path} (ask for the obsd group)"
                              ) from None
        except OSError as exc:
            self._socket.close()
            raise ClientError(f"cannot connect to {path}: {exc.strerror}") from None
        self._buffer = b""
        self._ids = itertools.count(1)
        self.greeting: dict[str, Any] = self.read_message()["data"]

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
        line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
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
        self._socket.sendall(msgspec.json.encode({"id": request_id, "op": op, **fields}) + b"\n")
        while True:
            message = self.read_message()
            if message.get("id") == request_id and "success" in message:
                return message

    def stream(self) -> Iterator[bytes]:
        """Every further line, waiting as long as it takes (for tail -f)."""
        self._socket.settimeout(None)
        while True:
            yield self.read_line()
