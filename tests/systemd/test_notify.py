"""sd_notify: the datagram sender, the status line, and what a real daemon tells systemd."""

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
import msgspec
import pytest

from obsctl.client import Client
from obsd.adapters.eventlog import SegmentDamage
from obsd.adapters.systemd import (
    MAX_STATUS_BYTES,
    ActivationError,
    Notifier,
    listen_fds,
)
from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    CalibrationPayload,
    CrnResult,
    CrnUpdatePayload,
    DonePayload,
    Event,
    RequestSentPayload,
    RunCreatedPayload,
    StatePayload,
    make_event,
)
from obsd.core.state import DaemonState, apply
from obsd.core.status_text import QUIET_AFTER_S, QUIET_BEFORE_S, in_quiet_window, status_line
from obsd.core.timing import NS
from obsd.core.token import TokenInfo
from obsd.daemon.notify import SystemdReporter
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


# -- the status line (pure) ------------------------------------------------------------------

def _fold(*payloads: msgspec.Struct) -> DaemonState:
    state = DaemonState()
    for seq, payload in enumerate(payloads, 1):
        event: Event = make_event(payload, seq, TARGET_NS - 3600 * NS + seq)
        state = apply(state, event)
    return state


def _created() -> RunCreatedPayload:
    config = Config(ecrn=("21234", "22001"), scrn=("20456",), target=iso(TARGET_NS))
    return RunCreatedPayload(RUN_ID, ACTOR, config, TokenInfo(fingerprint="f", exp=None),
                             TARGET_NS)


def _calibrated(fire_at_ns: int) -> CalibrationPayload:
    return CalibrationPayload(
        run_id=RUN_ID, ntp_server="pool", ntp_offset_ms=1.0, ntp_delay_ms=5.0, ntp_samples=3,
        rtt_min_ms=10.0, rtt_median_ms=11.0, rtt_jitter_ms=1.0, rtt_samples=5,
        date_offset_s=0.0, date_check="ok", send_delay_ms=0.1, fire_at_ns=fire_at_ns)


def _answered(attempt: int) -> CrnUpdatePayload:
    results = [CrnResult(crn="21234", kind="ecrn", state="success", code="successResult",
                         message="added"),
               CrnResult(crn="22001", kind="ecrn", state="full", code="VAL06", message="full"),
               CrnResult(crn="20456", kind="scrn", state="success", code="successResult",
                         message="dropped")]
    return CrnUpdatePayload(run_id=RUN_ID, attempt=attempt, outcome="answered",
                            http_status=200, sent_ns=TARGET_NS, responded_ns=TARGET_NS + NS,
                            results=results)


def test_status_when_idle() -> None:
    assert status_line(DaemonState(), TARGET_NS) == "idle; no runs yet"


def test_status_while_waiting_counts_down_to_the_fire_instant() -> None:
    fire = TARGET_NS + 5_000_000
    state = _fold(_created(), _calibrated(fire), StatePayload(RUN_ID, "waiting"))
    line = status_line(state, TARGET_NS - 754 * NS)
    assert line == (f"waiting: fires in 12 min 34 s at 14:00:00 Istanbul; 21234 pending, "
                    f"22001 pending, 20456 pending (run {RUN_ID})")
    assert "fires in 3 h 00 min" in status_line(state, TARGET_NS - 3 * 3600 * NS)
    assert "at 2026-01-15 14:00:00 Istanbul" in status_line(state, TARGET_NS - 30 * 3600 * NS)


def test_status_while_registering_shows_each_crn() -> None:
    sent = RequestSentPayload(RUN_ID, 1, ["21234", "22001"], ["20456"], TARGET_NS)
    state = _fold(_created(), StatePayload(RUN_ID, "waiting"), StatePayload(RUN_ID, "registering"),
                  sent)
    assert "attempt 1 waiting for OBS's answer" in status_line(state, TARGET_NS)
    state = apply(state, make_event(_answered(1), 9, TARGET_NS + NS))
    assert status_line(state, TARGET_NS + NS) == (
        f"registering: attempt 1 answered; 21234 added, 22001 full, 20456 dropped (run {RUN_ID})")


def test_status_after_a_run_gives_its_result() -> None:
    state = _fold(_created(), StatePayload(RUN_ID, "registering"), _answered(1),
                  DonePayload(RUN_ID, "done", "every CRN has its answer", []))
    assert status_line(state, TARGET_NS + 60 * NS) == (
        f"idle; last run done: 21234 added, 22001 full, 20456 dropped (run {RUN_ID})")
    failed = _fold(_created(), DonePayload(RUN_ID, "failed", "OBS refused the token (401)", []))
    assert "last run failed: 21234 pending, 22001 pending, 20456 pending - OBS refused the " \
           "token (401)" in status_line(failed, TARGET_NS)


def test_status_of_a_damaged_log_says_read_only() -> None:
    damage = SegmentDamage(segment="000001.jsonl", offset=10, line=3, reason="bad JSON")
    line = status_line(DaemonState(), TARGET_NS, f"log damaged at {damage.segment}")
    assert line.startswith("read-only: log damaged at 000001.jsonl")


def test_nothing_is_sent_around_a_shot() -> None:
    fire = TARGET_NS + 5_000_000
    state = _fold(_created(), _calibrated(fire), StatePayload(RUN_ID, "waiting"))
    assert not in_quiet_window(state, fire - int((QUIET_BEFORE_S + 0.1) * NS))
    assert in_quiet_window(state, fire - int((QUIET_BEFORE_S - 0.1) * NS))
    assert in_quiet_window(state, fire + int((QUIET_AFTER_S - 0.1) * NS))
    assert not in_quiet_window(state, fire + int((QUIET_AFTER_S + 0.1) * NS))
    # A retry is known from its request_sent event, written just before its final wait.
    retry = fire + 4 * NS
    state = apply(state, make_event(RequestSentPayload(RUN_ID, 2, ["22001"], [], retry), 9, fire))
    assert in_quiet_window(state, retry - NS)
    assert not in_quiet_window(DaemonState(), fire)


# -- the reporter's cadence, on a fake clock -------------------------------------------------

class RecordingNotifier:
    """Notifier's interface, noting when (on the fake clock) each message was sent."""

    def __init__(self, watchdog_s: float, clock: FakeClock, pings_wanted: int,
                 done: anyio.Event) -> None:
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
async def test_the_watchdog_is_pinged_at_half_its_interval(watchdog_s: float,
                                                           every_s: float) -> None:
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

def _spawn(short_dir: Path, processes: list[subprocess.Popen[bytes]],
           **env: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "obsd", "--socket", str(short_dir / "obsd.sock"),
         "--state-dir", str(short_dir / "state")],
        env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    processes.append(process)
    return process


def _fields(notifications: list[Notification], key: str) -> list[str]:
    return [n.fields[key] for n in notifications if key in n.fields]


def test_ready_comes_after_the_replay_and_the_socket_greets_at_once(
        short_dir: Path, notify_socket: NotifySocket,
        processes: list[subprocess.Popen[bytes]]) -> None:
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
    return sum(path.read_bytes().count(b"\n") for path in (state_dir / "log").iterdir()
               if path.suffix == ".jsonl")


def test_a_real_daemon_keeps_pinging_the_watchdog(
        short_dir: Path, notify_socket: NotifySocket,
        processes: list[subprocess.Popen[bytes]]) -> None:
    # The cadence itself is shown on a fake clock above; here the pings really arrive.
    _spawn(short_dir, processes, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    notify_socket.wait_for(lambda n: "READY" in n.fields)
    notify_socket.wait_for(
        lambda n: sum(m.fields.get("WATCHDOG") == "1" for m in notify_socket.received) >= 4)


def test_stopping_is_announced_on_sigterm(
        short_dir: Path, notify_socket: NotifySocket,
        processes: list[subprocess.Popen[bytes]]) -> None:
    process = _spawn(short_dir, processes, NOTIFY_SOCKET=str(notify_socket.path))
    notify_socket.wait_for(lambda n: "READY" in n.fields)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
    stopping = notify_socket.wait_for(lambda n: "STOPPING" in n.fields)
    assert stopping.fields == {"STOPPING": "1", "STATUS": "stopping: received SIGTERM"}
    assert notify_socket.received[-1] == stopping


def test_status_follows_a_run(short_dir: Path, notify_socket: NotifySocket,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    with registration(short_dir, opening_in_s=7.0) as reg:
        reg.plan(ecrn=["21234", "22001"])
        run_id = reg.start()
        reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        final = notify_socket.wait_for(
            lambda n: n.fields.get("STATUS", "").startswith("idle; last run done"))
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
        short_dir: Path, notify_socket: NotifySocket, daemon: DaemonProcess) -> None:
    # A second daemon on the same state directory: `systemctl status` should say so.
    result = subprocess.run(
        [sys.executable, "-m", "obsd", "--socket", str(short_dir / "second.sock"),
         "--state-dir", str(daemon.state_dir)],
        env=os.environ | {"NOTIFY_SOCKET": str(notify_socket.path)}, capture_output=True,
        timeout=WAIT_S, check=False)
    assert result.returncode == 1
    failed = notify_socket.wait_for(lambda n: "STATUS" in n.fields)
    assert failed.fields["STATUS"].startswith("failed to start: another obsd (pid ")
    assert "READY" not in failed.fields
