"""Shared fixtures: a real obsd process on a temporary socket and state dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

from obsctl.client import Client, ClientError

# Property tests give the same verdict on every run and machine (derandomized, no example
# database carried between runs), and never fail for being slow on a loaded machine.
settings.register_profile("obsd", derandomize=True, database=None, deadline=None)
# For exploring by hand: `pytest --hypothesis-profile=explore` draws new examples each run.
settings.register_profile("explore", deadline=None)
settings.load_profile("obsd")

# Generous: a loaded CI machine may take a while to start Python; tests never assert on it.
STARTUP_TIMEOUT_S = 20.0
# How often wait_until looks again: often enough to add no noticeable delay.
POLL_S = 0.01


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Return once `condition()` is true; fail saying `what` did not happen in `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(POLL_S)


@dataclass
class DaemonProcess:
    """A running `obsd` process and the paths it was given.

    Its stderr goes to a file of its own (kept across restarts of this one process object):
    a pipe read only at exit would fill up under a daemon that logs a lot, and hang it.
    """

    socket: Path
    state_dir: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None

    def start(self) -> DaemonProcess:
        """Spawn the daemon and wait until it greets a client."""
        self.process = self._spawn()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"obsd exited early: {self.stderr()}")
            try:
                with Client(self.socket, timeout=5):
                    return self
            except ClientError:
                time.sleep(POLL_S)
        raise AssertionError("obsd did not start in time")

    def argv(self) -> list[str]:
        """The daemon's command line."""
        return [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(self.socket),
            "--state-dir",
            str(self.state_dir),
            *self.extra_args,
        ]

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self.stderr_path is None:
            self.socket.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                prefix=self.socket.name + ".", suffix=".stderr", dir=self.socket.parent
            )
            os.close(fd)
            self.stderr_path = Path(name)
        with open(self.stderr_path, "ab") as err:
            return subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=err, stderr=err)

    def client(self) -> Client:
        """A new connection to the daemon."""
        return Client(self.socket)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the daemon and return its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=STARTUP_TIMEOUT_S)

    def stderr(self) -> str:
        """Everything the daemon wrote to stderr so far (also while it runs)."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temporary directory with a short path (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="obsd-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[DaemonProcess]:
    """A started daemon; stopped at the end of the test, which must then exit cleanly."""
    process = DaemonProcess(short_dir / "obsd.sock", short_dir / "state").start()
    yield process
    if process.process is not None and process.process.poll() is None:
        assert process.stop() == 0, process.stderr()


@pytest.fixture(scope="module")
def module_daemon() -> Iterator[DaemonProcess]:
    """One daemon for a module's property examples (a fresh one per example takes minutes)."""
    path = Path(tempfile.mkdtemp(prefix="obsd-", dir="/tmp"))
    process = DaemonProcess(path / "obsd.sock", path / "state").start()
    try:
        yield process
    finally:
        status = process.stop()
        stderr = process.stderr()
        shutil.rmtree(path, ignore_errors=True)
    assert status == 0, stderr
    assert "Traceback" not in stderr, "nothing a client sent made the daemon fail inside"


def require_root(why: str) -> None:
    """Skip a test that needs root, except in CI, where it fails (CI runs as root)."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail(f"needs root: {why}")
    pytest.skip(f"needs root: {why}")


# Root without the capabilities that bypass file permissions: a real binary run this way meets
# EACCES exactly as another user would, while the checkout and its venv stay readable to it.
WITHOUT_FILE_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def script_path(name: str) -> str:
    """A console script installed beside this interpreter (obsd, obsctl)."""
    return str(Path(sys.executable).with_name(name))


# A slow suite may run for many minutes by design (the crash suite has a 17-minute budget);
# this still bounds it, so that a hang costs half an hour of CI, not all of it.
SLOW_TIMEOUT_S = 30 * 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give slow tests without a timeout of their own the slow suites' bound."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
