"""systemd without libsystemd: sd_notify datagrams, the watchdog interval, socket activation.

Each part follows the documented protocol (sd_notify(3), sd_watchdog_enabled(3),
sd_listen_fds(3)) and reads its environment variables once, removing them, so that no child
process takes messages or sockets meant for the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping
from typing import Final

from obsd.core.repeats import RepeatedFailure

logger = logging.getLogger("obsd.systemd")

NOTIFY_SOCKET_ENV: Final = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV: Final = "WATCHDOG_USEC"
WATCHDOG_PID_ENV: Final = "WATCHDOG_PID"
LISTEN_PID_ENV: Final = "LISTEN_PID"
LISTEN_FDS_ENV: Final = "LISTEN_FDS"
LISTEN_FDNAMES_ENV: Final = "LISTEN_FDNAMES"
# sd_listen_fds(3): passed descriptors follow stdin, stdout and stderr.
LISTEN_FDS_START: Final = 3
# systemd reads at most this much of one notification (NOTIFY_BUFFER_MAX); a longer STATUS= is
# cut here rather than dropped whole.
MAX_STATUS_BYTES: Final = 1024
USEC: Final = 1_000_000


class ActivationError(RuntimeError):
    """systemd passed sockets that the daemon cannot use; the message says which and why."""


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET; every method is a no-op without one."""

    def __init__(self, address: str | None = None, watchdog_s: float | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self.watchdog_s = watchdog_s
        self._sock: socket.socket | None = None
        # A gone service manager would otherwise flood the journal once a second.
        self._failures = RepeatedFailure(f"notifying systemd at {address}")

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier systemd asked for (NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID)."""
        env = os.environ if environ is None else environ
        address = env.pop(NOTIFY_SOCKET_ENV, None)
        return cls(address, _watchdog_seconds(env))

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to tell anything."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; False if it could not be delivered."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Called from the event loop: a full receive queue must drop the message, not
                # stall the daemon (systemd drains its queue quickly; a lost STATUS= is harmless).
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if line := self._failures.failed(str(exc), time.monotonic_ns()):
                logger.warning("%s", line)
            return False
        if line := self._failures.succeeded(time.monotonic_ns()):
            logger.info("%s", line)
        return True

    def ready(self, status: str) -> bool:
        """READY=1: startup is complete (systemd then starts units ordered after us)."""
        return self.notify("READY=1", _status_assignment(status))

    def status(self, status: str) -> bool:
        """STATUS=: one line for `systemctl status`."""
        return self.notify(_status_assignment(status))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the event loop is alive."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        """STOPPING=1: shutdown has begun."""
        return self.notify("STOPPING=1", _status_assignment(status))

    def close(self) -> None:
        """Release the datagram socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(address: str) -> str | bytes | None:
    if address.startswith("/"):
        return address
    if address.startswith("@"):
        # A leading '@' names a socket in the abstract namespace, spelt with a NUL byte.
        return b"\0" + address[1:].encode()
    logger.warning(
        "ignoring NOTIFY_SOCKET=%r: only AF_UNIX paths and @abstract names are supported", address
    )
    return None


def _status_assignment(status: str) -> str:
    # One line: a newline would start a new assignment in the datagram.
    text = " ".join(status.split())
    encoded = text.encode()[:MAX_STATUS_BYTES]
    return "STATUS=" + encoded.decode(errors="ignore")


def _watchdog_seconds(env: MutableMapping[str, str]) -> float | None:
    """WatchdogSec= in seconds if it is meant for this process (sd_watchdog_enabled(3))."""
    usec = env.pop(WATCHDOG_USEC_ENV, None)
    pid = env.pop(WATCHDOG_PID_ENV, None)
    if usec is None:
        return None
    if pid is not None and pid != str(os.getpid()):
        return None  # Meant for the process that spawned us, not for us.
    try:
        value = int(usec)
    except ValueError:
        logger.warning("ignoring %s=%r: not a number of microseconds", WATCHDOG_USEC_ENV, usec)
        return None
    return value / USEC if value > 0 else None


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[int]:
    """The descriptors systemd passed to this process (sd_listen_fds with unset_environment)."""
    env = os.environ if environ is None else environ
    pid = env.pop(LISTEN_PID_ENV, None)
    count = env.pop(LISTEN_FDS_ENV, None)
    env.pop(LISTEN_FDNAMES_ENV, None)
    if pid is None or count is None:
        return []
    if pid != str(os.getpid()):
        return []  # Meant for the process that spawned us, not for us.
    try:
        number = int(count)
    except ValueError:
        raise ActivationError(f"{LISTEN_FDS_ENV}={count!r} is not a number") from None
    fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + max(number, 0)))
    for fd in fds:
        try:
            # Ours alone: a child process must not keep the listening socket open.
            os.set_inheritable(fd, False)
        except OSError as exc:
            raise ActivationError(
                f"{LISTEN_FDS_ENV}={count} but fd {fd} is unusable: {exc}"
            ) from None
    return fds


def inherited_control_socket(
    environ: MutableMapping[str, str] | None = None,
) -> socket.socket | None:
    """The listening Unix stream socket systemd passed (obsd.socket), or None if none."""
    fds = listen_fds(environ)
    if not fds:
        return None
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise ActivationError(
            f"systemd passed {len(fds)} sockets; obsd takes exactly one "
            "(a single ListenStream= in obsd.socket)"
        )
    try:
        sock = socket.socket(fileno=fds[0])
    except OSError as exc:
        os.close(fds[0])
        raise ActivationError(f"fd {fds[0]} from systemd is not a socket: {exc}") from None
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not listening:
        sock.close()
        raise ActivationError(
            "the socket systemd passed is not a listening Unix stream "
            "socket (obsd.socket needs ListenStream=/path and Accept=no)"
        )
    return sock


def socket_name(sock: socket.socket) -> str:
    """A listening Unix socket's address, for log lines."""
    name = sock.getsockname()
    if isinstance(name, bytes):
        return "@" + name[1:].decode(errors="replace")
    return str(name) or "(unnamed)"
