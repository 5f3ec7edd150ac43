"""The wait before the shot, in process with a fake clock: an unreachable OBS during the
warm-up and NTP servers that stop answering are said once with a count, not once per retry."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
import pytest

from obsd.adapters.eventlog import EventLog
from obsd.core.config import Config
from obsd.core.events import Actor, CalibrationPayload, Event, Log, RunCreatedPayload
from obsd.core.state import DaemonState, apply
from obsd.core.timing import ClockMap, NtpSample
from obsd.core.token import TokenInfo
from obsd.core.waiting import RECHECK_NTP_EVERY_S
from obsd.daemon import engine
from obsd.daemon.calibration import Calibrated, ClockSync
from obsd.daemon.engine import RunDriver
from tests.fake_clock import NS, FakeClock

RUN_ID = "run-1"
# Long enough for several periodic NTP re-checks and the whole minute of keep-alive probes.
WAIT_S = 3 * RECHECK_NTP_EVERY_S + 120


class Host:
    """The daemon as the driver sees it: a real log folded into a state, and a token."""

    def __init__(self, directory: Path) -> None:
        self.state = DaemonState()
        self.events: list[Event] = []
        self.log = EventLog.open(directory, self.fold)
        self.token: str | None = "token"

    def fold(self, event: Event) -> None:
        self.events.append(event)
        self.state = apply(self.state, event)

    def said(self) -> list[str]:
        return [e.payload.message for e in self.events if isinstance(e, Log)]


class UnreachableObs:
    """An OBS whose HEADs fail to connect (the first `failing` of them; all by default)."""

    def __init__(self, failing: int = 10**9) -> None:
        self.probes = 0
        self.failing = failing

    async def probe(self) -> None:
        self.probes += 1
        if self.probes <= self.failing:
            raise httpx.ConnectError("[Errno 111] Connection refused")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def calibrated(clock: FakeClock, shot: int) -> Calibrated:
    """What calibration hands the wait: no NTP, no RTT, the shot at `shot` (true time)."""
    payload = msgspec.convert({"run_id": RUN_ID, "ntp_server": None, "ntp_offset_ms": None,
                               "ntp_delay_ms": None, "ntp_samples": 0, "rtt_min_ms": None,
                               "rtt_median_ms": None, "rtt_jitter_ms": None, "rtt_samples": 0,
                               "date_offset_s": None, "date_check": "no Date header",
                               "send_delay_ms": None}, CalibrationPayload)
    return Calibrated(payload, ClockMap(clock.mono_ns(), clock.wall_ns()), shot)


async def wait_out(host: Host, clock: FakeClock, obs: UnreachableObs, wait_s: float) -> None:
    shot = clock.wall_ns() + int(wait_s * NS)
    await host.log.append(RunCreatedPayload(RUN_ID, Actor(0, 1), Config(),
                                            TokenInfo(fingerprint="sha256:x", exp=None), shot))
    driver = RunDriver(host, RUN_ID, clock)
    await driver._wait_for_opening(obs, calibrated(clock, shot))  # type: ignore[arg-type]


async def test_unreachable_obs_and_ntp_are_said_once_each_with_a_count(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    ntp_checks = 0

    async def no_ntp(config: Config, clock: FakeClock) -> ClockSync:
        nonlocal ntp_checks
        ntp_checks += 1
        mapping = ClockMap(clock.mono_ns(), clock.wall_ns())
        return ClockSync(mapping, None, 0, "0.tr.pool.ntp.org: No response received")

    monkeypatch.setattr(engine, "sync_clock", no_ntp)
    obs = UnreachableObs()
    await wait_out(host, FakeClock(), obs, WAIT_S)
    assert obs.probes >= 10 and ntp_checks >= 3, "the retries were made"
    assert host.said() == [
        "NTP re-check (the last good clock mapping stays) failed: "
        "0.tr.pool.ntp.org: No response received",
        "keep-alive probe to OBS failed: ConnectError('[Errno 111] Connection refused')",
        "keep-alive probe to OBS failed 10 times in 45 s (said again at 100); "
        "last: ConnectError('[Errno 111] Connection refused')",
    ]


async def test_obs_answering_again_is_said_once(host: Host,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    async def ntp(config: Config, clock: FakeClock) -> ClockSync:
        mapping = ClockMap(clock.mono_ns(), clock.wall_ns())
        return ClockSync(mapping, NtpSample("ntp", 0, NS // 1000), 1, None)

    monkeypatch.setattr(engine, "sync_clock", ntp)
    await wait_out(host, FakeClock(), UnreachableObs(failing=3), wait_s=120)
    assert host.said() == [
        "keep-alive probe to OBS failed: ConnectError('[Errno 111] Connection refused')",
        "keep-alive probe to OBS works again after 3 failures in 15 s",
    ]
