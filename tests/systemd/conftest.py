"""Helpers for the systemd tests: the tools they need, and a socket playing NOTIFY_SOCKET."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# A loaded CI machine may take a while to start Python; no test asserts on this.
WAIT_S = 20.0
RECEIVE_BYTES = 4096
# The Debian package of each tool that is not in the systemd package itself.
PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "nsenter": "util-linux",
    "unshare": "util-linux",
}


def require_tool(name: str) -> str:
    """The path of `name`; in CI a missing tool fails the test, elsewhere it skips it."""
    path = shutil.which(name)
    if path is not None:
        return path
    package = PACKAGES.get(name, "systemd")
    message = (
        f"{name} not found: install Debian's {package} package "
        f"(apt-get install {package}; .ci/run does this)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Notification:
    """One sd_notify datagram: when it arrived and its KEY=value fields."""

    at: float
    fields: dict[str, str]


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._received: list[Notification] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(RECEIVE_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.time()
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._lock:
                self._received.append(Notification(at, fields))

    @property
    def received(self) -> list[Notification]:
        """Every datagram so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def wait_for(
        self, matches: Callable[[Notification], bool], timeout_s: float = WAIT_S
    ) -> Notification:
        """The first datagram that `matches`, waiting up to `timeout_s` for it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for notification in self.received:
                if matches(notification):
                    return notification
            time.sleep(0.01)
        raise AssertionError(f"no matching notification in {timeout_s} s; got {self.received}")

    def close(self) -> None:
        """Stop collecting and release the socket."""
        self._closed.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[NotifySocket]:
    """A NOTIFY_SOCKET to hand the daemon, collecting what it sends."""
    receiver = NotifySocket(short_dir / "notify")
    yield receiver
    receiver.close()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started; any still running at the end get SIGTERM, by their pid."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=WAIT_S)
