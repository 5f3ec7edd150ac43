"""sd_notify: the datagram sender, the reporter's cadence, and what a real daemon tells systemd."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest

from obsctl.client import Client
from obsd.adapters.systemd import (
    MAX_STATUS_BYTES,
    ActivationError,
    Notifier,
    listen_fds,
)
from obsd.core.events import (
    Actor,
)
from obsd.core.state import DaemonState
from obsd.core.status_text import QUIET_BEFORE_S
from obsd.core.timing import NS
from obsd.daemon.systemd_status import SystemdReporter
from tests.conftest import DaemonProcess
from tests.fake_clock import FakeClock
from tests.harness import iso, registration
from tests.systemd.conftest import WAIT_S, Notification, NotifySocket

# 2026-01-15 11:00:00 UTC: 14:00:00 in Istanbul.
TARGET_NS = 1_768_474_800 * NS
ACTOR = Actor(uid=1000, pid=7)
RUN_ID = "0b7e3f5c-6c1e-4c1d-9f0e-2d5b8a7c9e11"


# -- the sender ------------------------------------------------------------------------------


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready("idle") is False
    assert notifier.watchdog_s is None


def test_messages_reach_the_socket_and_the_variable_is_consumed(short_dir: Path) -> None:
    receiver = _receiver(str(short_dir / "notify"))
    env = {"NOTIFY_SOCKET": str(short_dir / "notify"), "OTHER": "kept"}
    notifier = Notifier.from_environment(env)
    # Children of the daemon must not be able to speak for it.
    assert env == {"OTHER": "kept"}
    assert notifier.ready("idle; no runs yet")
    assert receiver.recv(4096) == b"READY=1\nSTATUS=idle; no runs yet"
    assert notifier.watchdog()
    assert receiver.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping("stopping: received SIGTERM")
    assert receiver.recv(4096) == b"STOPPING=1\nSTATUS=stopping: received SIGTERM"
    notifier.close()
    receiver.close()


def test_an_abstract_socket_name_is_spelt_with_a_nul() -> None:
    name = f"obsd-test-{uuid.uuid4().hex}"
    receiver = _receiver("\0" + name)
    notifier = Notifier("@" + name)
    assert notifier.status("waiting")
    assert receiver.recv(4096) == b"STATUS=waiting"
    notifier.close()
    receiver.close()


def test_status_is_one_bounded_line(short_dir: Path) -> None:
    receiver = _receiver(str(short_dir / "notify"))
    notifier = Notifier(str(short_dir / "notify"))
    notifier.status("two\nlines")
    assert receiver.recv(4096) == b"STATUS=two lines"
    notifier.status("x" * 5000)
    assert receiver.recv(8192) == b"STATUS=" + b"x" * MAX_STATUS_BYTES
    notifier.close()
    receiver.close()


def test_a_missing_service_manager_is_not_an_error(short_dir: Path) -> None:
    notifier = Notifier(str(short_dir / "nobody-listens"))
    assert notifier.enabled
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
    assert Notifier("vsock:2:1234").enabled is False  # An address family we do not speak.


def test_the_watchdog_interval_is_ours_only_when_the_pid_matches() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environment(env).watchdog_s == 30.0
    assert env == {}
    assert Notifier.from_environment({"WATCHDOG_USEC": "2000000"}).watchdog_s == 2.0
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_environment(other).watchdog_s is None
    assert Notifier.from_environment({"WATCHDOG_USEC": "0"}).watchdog_s is None
    assert Notifier.from_environment({"WATCHDOG_USEC": "soon"}).watchdog_s is None


def test_listen_fds_for_another_process_are_ignored_and_unset() -> None:
    assert listen_fds({}) == []
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "obsd.socket"}
    assert listen_fds(env) == []
    assert env == {}
    with pytest.raises(ActivationError, match="not a number"):
        listen_fds({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "one"})


# -- the reporter's cadence, on a fake clock -------------------------------------------------


class RecordingNotifier:
    """Notifier's interface, noting when (on the fake clock) each message was sent."""

    def __init__(
        self, watchdog_s: float, clock: FakeClock, pings_wanted: int, done: anyio.Event
    ) -> None:
        self.watchdog_s = watchdog_s
        self.enabled = True
        self.pings: list[int] = []
        self._clock, self._wanted, self._done = clock, pings_wanted, done

    def watchdog(self) -> bool:
        self.pings.append(self._clock.mono_ns())
        if len(self.pings) == self._wanted:
            self._done.set()
        return True

    def status(self, status: str) -> bool:
        return True

    ready = stopping = status


@pytest.mark.parametrize(("watchdog_s", "every_s"), [(1.0, 0.5), (30.0, 15.0)])
async def test_the_watchdog_is_pinged_at_half_its_interval(
    watchdog_s: float, every_s: float
) -> None:
    clock = FakeClock()
    done = anyio.Event()
    notifier = RecordingNotifier(watchdog_s, clock, pings_wanted=20, done=done)
    journal = SimpleNamespace(state=DaemonState(), log=SimpleNamespace(damage=None))
    reporter = SystemdReporter(notifier, journal, clock)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(reporter.run)
        await done.wait()
        tasks.cancel_scope.cancel()
    gaps = [b - a for a, b in itertools.pairwise(notifier.pings)]
    # sd_watchdog_enabled(3): ping at half the interval; a whole interval would be fatal.
    assert gaps == [int(every_s * NS)] * 19


# -- a real daemon ---------------------------------------------------------------------------


def _spawn(
    short_dir: Path, processes: list[subprocess.Popen[bytes]], **env: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(short_dir / "obsd.sock"),
            "--state-dir",
            str(short_dir / "state"),
        ],
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(process)
    return process


def _fields(notifications: list[Notification], key: str) -> list[str]:
    return [n.fields[key] for n in notifications if key in n.fields]


def test_ready_comes_after_the_replay_and_the_socket_greets_at_once(
    short_dir: Path, notify_socket: NotifySocket, processes: list[subprocess.Popen[bytes]]
) -> None:
    # A log with history: a configured plan whose target lies ahead.
    first = DaemonProcess(short_dir / "obsd.sock", short_dir / "state").start()
    target = time.time_ns() + 3 * 3600 * NS
    with first.client() as client:
        response = client.request("configure", config={"ecrn": ["21234"], "target": iso(target)})
        assert response["success"], response
    assert first.stop() == 0
    head_before = _head_seq(short_dir / "state")

    _spawn(short_dir, processes, NOTIFY_SOCKET=str(notify_socket.path))
    ready = notify_socket.wait_for(lambda n: n.fields.get("READY") == "1")
    # One attempt, no retry: when READY arrives the socket already takes connections.
    with Client(short_dir / "obsd.sock", timeout=5) as client:
        assert client.greeting["head_seq"] == head_before + 1  # + daemon_started
    # The status sent with READY already reflects the replayed plan.
    assert ready.fields["STATUS"].startswith("idle; target ")
    assert "no run started" in ready.fields["STATUS"]
    # Its whole life, start to stop: READY once, and no pings without WATCHDOG_USEC.
    processes[-1].send_signal(signal.SIGTERM)
    notify_socket.wait_for(lambda n: "STOPPING" in n.fields)
    notifications = notify_socket.received
    assert _fields(notifications, "READY") == ["1"]
    assert not _fields(notifications, "WATCHDOG"), "no WATCHDOG_USEC, no pings"


def _head_seq(state_dir: Path) -> int:
    return sum(
        path.read_bytes().count(b"\n")
        for path in (state_dir / "log").iterdir()
        if path.suffix == ".jsonl"
    )


def test_a_real_daemon_keeps_pinging_the_watchdog(
    short_dir: Path, notify_socket: NotifySocket, processes: list[subprocess.Popen[bytes]]
) -> None:
    # The cadence itself is shown on a fake clock above; here the pings really arrive.
    _spawn(short_dir, processes, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    notify_socket.wait_for(lambda n: "READY" in n.fields)
    notify_socket.wait_for(
        lambda n: sum(m.fields.get("WATCHDOG") == "1" for m in notify_socket.received) >= 4
    )


def test_stopping_is_announced_on_sigterm(
    short_dir: Path, notify_socket: NotifySocket, processes: list[subprocess.Popen[bytes]]
) -> None:
    process = _spawn(short_dir, processes, NOTIFY_SOCKET=str(notify_socket.path))
    notify_socket.wait_for(lambda n: "READY" in n.fields)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
    stopping = notify_socket.wait_for(lambda n: "STOPPING" in n.fields)
    assert stopping.fields == {"STOPPING": "1", "STATUS": "stopping: received SIGTERM"}
    assert notify_socket.received[-1] == stopping


def test_status_follows_a_run(
    short_dir: Path, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    # Status goes out once a second and stops QUIET_BEFORE_S before the shot: an opening this
    # far off leaves room for two countdown updates even when `start` comes a second or two
    # after READY (it did, once, on a loaded CI machine at 5 s).
    with registration(short_dir, opening_in_s=8.0) as reg:
        reg.plan(ecrn=["21234", "22001"])
        run_id = reg.start()
        reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        final = notify_socket.wait_for(
            lambda n: n.fields.get("STATUS", "").startswith("idle; last run done")
        )
    statuses = _fields(notify_socket.received, "STATUS")
    assert statuses[0] == "idle; no runs yet"  # Sent with READY, before the plan.
    waiting = [s for s in statuses if s.startswith("waiting: fires in ")]
    assert len(waiting) >= 2, statuses  # A countdown, updated as it goes.
    assert all(s.endswith(f"(run {run_id})") for s in waiting)
    assert final.fields["STATUS"] == f"idle; last run done: 21234 added, 22001 full (run {run_id})"
    # Nothing reached systemd's socket while the POST was about to leave (the fire instant
    # is in true time; the receipt times are this machine's wall clock, off by the offset).
    calibration = run["calibration"]
    fire_s = calibration["fire_at_ns"] / NS - calibration["ntp_offset_ms"] / 1000
    before = [n for n in notify_socket.received if fire_s - QUIET_BEFORE_S + 0.2 < n.at < fire_s]
    assert not before, before


def test_a_failed_start_says_why_in_the_status(
    short_dir: Path, notify_socket: NotifySocket, daemon: DaemonProcess
) -> None:
    # A second daemon on the same state directory: `systemctl status` should say so.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(short_dir / "second.sock"),
            "--state-dir",
            str(daemon.state_dir),
        ],
        env=os.environ | {"NOTIFY_SOCKET": str(notify_socket.path)},
        capture_output=True,
        timeout=WAIT_S,
        check=False,
    )
    assert result.returncode == 1
    failed = notify_socket.wait_for(lambda n: "STATUS" in n.fields)
    assert failed.fields["STATUS"].startswith("failed to start: another obsd (pid ")
    assert "READY" not in failed.fields
