"""Bare-socket tools for the reliability suites: lines, RSS, a logged daemon, other users."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

# Every read waits at most this long: a daemon silent for that long is hung, not slow.
READ_TIMEOUT_S: Final = 30.0
RECEIVE_BYTES: Final = 256 * 1024
MIB: Final = 1024 * 1024
# The growth of the daemon's resident memory the suites tolerate under hostile load: far above
# what the ~64 KiB line buffer per connection needs, far below a leak of the input.
RSS_GROWTH_LIMIT_KIB: Final = 50 * 1024
# Bounds how long a crowd held by `holding_as` takes to let go (it never takes this long).
HOLD_TIMEOUT_S: Final = 60.0


class WireError(AssertionError):
    """The daemon broke the protocol, closed unexpectedly or did not answer in time."""


def vm_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM, ...), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Wire:
    """One raw connection: send bytes, read whole lines; the greeting is read on connect."""

    def __init__(
        self, path: Path, *, timeout: float = READ_TIMEOUT_S, rcvbuf: int | None = None
    ) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except BaseException:
            self.sock.close()
            raise
        self._buffer = bytearray()
        self.greeting: dict[str, Any] = self.read_message()

    def send(self, data: bytes) -> None:
        """Write all of `data`."""
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        """The next line (without its newline); WireError on EOF or timeout."""
        while (newline := self._buffer.find(b"\n")) == -1:
            try:
                data = self.sock.recv(RECEIVE_BYTES)
            except TimeoutError:
                raise WireError("the daemon did not answer in time") from None
            if not data:
                raise WireError("the daemon closed the connection")
            self._buffer += data
        line = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        return line

    def read_message(self) -> dict[str, Any]:
        """The next line as a JSON object."""
        line = self.read_line()
        message = msgspec.json.decode(line)
        if not isinstance(message, dict):
            raise WireError(f"the daemon sent a non-object line: {line[:80]!r}")
        return message

    def read_response(self) -> dict[str, Any]:
        """The next response envelope, skipping tail output (events and caught_up)."""
        while True:
            message = self.read_message()
            if "success" in message:
                return message
            if "type" not in message:
                raise WireError(f"neither a response nor tail output: {message!r:.200}")

    def request(self, op: str, request_id: int | str = 1, **fields: Any) -> dict[str, Any]:
        """Send one well-formed request and return its response."""
        self.send(msgspec.json.encode({"id": request_id, "op": op, **fields}) + b"\n")
        response = self.read_response()
        if response["id"] != request_id:
            raise WireError(f"response to {request_id!r} came back as {response!r:.300}")
        return response

    def at_eof(self) -> bool:
        """Whether the daemon has closed its side (waits up to the read timeout)."""
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_as(uid: int, gid: int, groups: list[int], work: Callable[[], Any]) -> Any:
    """Run `work` in a forked child that dropped to uid/gid/groups; return its JSON result.

    Like tests/daemon/test_daemon_process.py's run_as, with supplementary groups.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # The child: drop privileges for real, then do the work.
        status = 0
        try:
            os.close(read_end)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            result = msgspec.json.encode(work())
        except BaseException as exc:
            result = msgspec.json.encode({"child_error": repr(exc)})
            status = 1
        try:
            view = memoryview(result)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    result = msgspec.json.decode(data)
    if isinstance(result, dict) and "child_error" in result:
        raise AssertionError(f"the child running as uid {uid} failed: {result['child_error']}")
    return result


@contextlib.contextmanager
def holding_as(
    uid: int,
    gid: int,
    directory: Path,
    hold: Callable[[], Any],
    then: Callable[[Any], Any],
) -> Iterator[list[Any]]:
    """As uid/gid in a forked child: `hold()` (a crowd of connections, say), keep it while the
    `with` body runs, then `then(held)`. The list yielded holds the child's result afterwards.

    Two FIFOs order it (each open blocks until both ends are open): no sleeps.
    """
    held, release = directory / "held.fifo", directory / "release.fifo"
    for fifo in (held, release):
        os.mkfifo(fifo)
        os.chmod(fifo, 0o666)

    def child() -> Any:
        # Open before saying "held", so that the parent's release cannot come too early.
        release_fd = os.open(release, os.O_RDONLY | os.O_NONBLOCK)
        try:
            holding, failure = hold(), None
        except Exception as exc:  # Said after the release: the parent must not wait forever.
            holding, failure = None, exc
        held.write_text("held\n")
        select.select([release_fd], [], [])
        os.close(release_fd)
        if failure is not None:
            raise failure
        return then(holding)

    outcome: list[Any] = []

    def parent_side() -> None:
        try:
            outcome.append(run_as(uid, gid, [], child))
        except AssertionError as exc:
            outcome.append(exc)
        finally:
            _signal(held)  # A child that died before saying "held" must not hang the parent.

    thread = threading.Thread(target=parent_side, daemon=True)
    thread.start()
    held.read_text()
    results: list[Any] = []
    try:
        yield results
    finally:
        _signal(release)
        thread.join(HOLD_TIMEOUT_S)
        for fifo in (held, release):
            fifo.unlink()
    (result,) = outcome
    if isinstance(result, AssertionError):
        raise result
    results.append(result)


def _signal(fifo: Path) -> None:
    """Write a line to `fifo` if someone has it open to read; never block."""
    with contextlib.suppress(OSError):  # ENXIO: no reader (any more), nothing to wake
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"go\n")
        finally:
            os.close(fd)
