"""What systemd hears from the daemon: STATUS= lines for people, watchdog pings, READY, STOPPING.

`status_line` and `in_quiet_window` are pure (state and an instant in, text or a verdict out);
`SystemdReporter` polls the folded state from the event loop and sends what changed.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Final

from obsd.adapters.systemd import Notifier
from obsd.core.config import ISTANBUL
from obsd.core.results import CrnState
from obsd.core.runs import CrnStatus, Phase, RunState
from obsd.core.state import DaemonState
from obsd.core.status_text import duration_text
from obsd.core.timing import MS, NS, epoch_ns
from obsd.daemon.engine import FINAL_APPROACH_S
from obsd.daemon.service import Service

# `systemctl status` is read by people: one update a second follows a countdown closely enough,
# and polling the folded state that often costs next to nothing.
STATUS_EVERY_S: Final = 1.0
# The engine keeps the event loop quiet in its final approach to a shot; we add a second of
# margin before it (the plan can move a little at the last NTP re-check) and stay silent until
# the POST has surely left. Watchdog pings wait out this window too, so a ping can come up to
# window + one tick (4 s) late: WatchdogSec= must be above 8 s (the unit sets 30 s).
QUIET_BEFORE_S: Final = FINAL_APPROACH_S + 1.0
QUIET_AFTER_S: Final = 0.5
# Beyond this many CRNs a per-CRN list would not fit on a status line; counts by state do.
LIST_CRNS_UP_TO: Final = 6
# A target further away than this is shown with its date, not only a time of day.
SHOW_DATE_BEYOND_S: Final = 20 * 3600


def _istanbul(epoch_ns: int, now_ns: int) -> str:
    """An instant on Istanbul's wall clock, with the date when it is not near."""
    moment = datetime.fromtimestamp(epoch_ns / NS, ISTANBUL)
    if abs(epoch_ns - now_ns) > SHOW_DATE_BEYOND_S * NS:
        return moment.strftime("%Y-%m-%d %H:%M:%S Istanbul")
    return moment.strftime("%H:%M:%S Istanbul")


def _crn_word(status: CrnStatus) -> str:
    if status.state is CrnState.SUCCESS:
        return "dropped" if status.kind == "scrn" else "added"
    return str(status.state)


def crn_summary(run: RunState) -> str:
    """Each CRN's state (`21234 added, 22001 full`), or counts by state for long plans."""
    if len(run.crns) <= LIST_CRNS_UP_TO:
        return ", ".join(f"{c.crn} {_crn_word(c)}" for c in run.crns)
    counts = Counter(_crn_word(c) for c in run.crns)
    return ", ".join(f"{count} {word}" for word, count in counts.most_common())


def _shot_ns(run: RunState) -> int:
    """When the first POST leaves (the planned fire instant once calibrated, else the target)."""
    if run.calibration is not None and run.calibration.fire_at_ns is not None:
        return run.calibration.fire_at_ns
    return run.target_ns


def next_shot_ns(run: RunState) -> int | None:
    """The latest POST instant the record knows of: the first shot, or the last retry's."""
    if run.phase not in (Phase.CALIBRATING, Phase.WAITING, Phase.REGISTERING):
        return None
    shots = [_shot_ns(run)] + [request.at_ns for request in run.requests[-1:]]
    return max(shots)


def in_quiet_window(state: DaemonState, true_now_ns: int) -> bool:
    """Whether a POST is about to leave (or just left): send nothing to systemd then."""
    if state.active_run is None:
        return False
    shot = next_shot_ns(state.runs[state.active_run])
    if shot is None:
        return False
    return shot - QUIET_BEFORE_S * NS <= true_now_ns <= shot + QUIET_AFTER_S * NS


def _active(run: RunState, now_ns: int) -> str:
    suffix = f" (run {run.run_id})"
    if run.phase is Phase.REGISTERING:
        last = run.requests[-1] if run.requests else None
        if last is None:
            return f"registering: first POST leaving{suffix}"
        answer = "waiting for OBS's answer" if last.outcome is None else "answered"
        return f"registering: attempt {last.attempt} {answer}; {crn_summary(run)}{suffix}"
    shot = _shot_ns(run)
    what = "fires" if run.phase is Phase.WAITING else "target"
    return (f"{run.phase}: {what} in {duration_text((shot - now_ns) / NS)} at "
            f"{_istanbul(shot, now_ns)}; {crn_summary(run)}{suffix}")


def _idle(state: DaemonState, now_ns: int) -> str:
    parts = ["idle"]
    target = state.config.target
    if target is not None:
        target_ns = epoch_ns(datetime.fromisoformat(target))
        if target_ns > now_ns:
            parts.append(f"target {_istanbul(target_ns, now_ns)} in "
                         f"{duration_text((target_ns - now_ns) / NS)}, no run started")
    last = next(reversed(state.runs.values()), None)
    if last is None:
        parts.append("no runs yet")
    else:
        result = f"last run {last.phase}: {crn_summary(last)}"
        if last.phase is Phase.FAILED and last.reason:
            result += f" - {last.reason}"
        parts.append(f"{result} (run {last.run_id})")
    return "; ".join(parts)


def status_line(state: DaemonState, true_now_ns: int, damage: str | None = None) -> str:
    """The one line `systemctl status obsd` shows: phase, countdown, last result."""
    if damage is not None:
        return f"read-only: {damage} (obsctl health)"
    if state.active_run is not None:
        return _active(state.runs[state.active_run], true_now_ns)
    return _idle(state, true_now_ns)


class SystemdReporter:
    """Sends READY/STATUS/WATCHDOG/STOPPING for one daemon, from its event loop."""

    def __init__(self, notifier: Notifier, service: Service) -> None:
        self._notifier = notifier
        self._service = service
        watchdog_s = notifier.watchdog_s
        # sd_watchdog_enabled(3) advises pinging at half the interval.
        self._ping_every_s = watchdog_s / 2 if watchdog_s else None
        self._last_status: str | None = None

    def _true_now_ns(self) -> int:
        """The wall clock corrected by the last NTP offset (countdowns match the engine's)."""
        calibration = self._service.state.calibration
        offset_ms = calibration.ntp_offset_ms if calibration is not None else None
        return self._service.clock.wall_ns() + int((offset_ms or 0.0) * MS)

    def current_status(self) -> str:
        """The status line as of now."""
        log = self._service.log
        damage = None
        if log.damage is not None:
            damage = (f"log damaged at {log.damage.segment} line {log.damage.line}: "
                      f"{log.damage.reason}")
        return status_line(self._service.state, self._true_now_ns(), damage)

    def ready(self) -> None:
        """The log is replayed and the socket accepts connections."""
        self._last_status = self.current_status()
        self._notifier.ready(self._last_status)
        if self._ping_every_s is not None:
            # A long replay may have used much of WatchdogSec: the count starts afresh here.
            self._notifier.watchdog()

    def stopping(self, reason: str) -> None:
        """Shutdown has begun."""
        self._notifier.stopping(f"stopping: {reason}")

    async def run(self) -> None:
        """Update STATUS= when it changes (about once a second) and ping the watchdog."""
        if not self._notifier.enabled:
            return
        tick = min(STATUS_EVERY_S, self._ping_every_s or STATUS_EVERY_S)
        clock = self._service.clock
        last_ping = clock.mono_ns() / NS
        while True:
            await clock.sleep_until(clock.mono_ns() + int(tick * NS))
            if in_quiet_window(self._service.state, self._true_now_ns()):
                continue
            now = clock.mono_ns() / NS
            if self._ping_every_s is not None and now - last_ping >= self._ping_every_s - tick / 2:
                self._notifier.watchdog()
                last_ping = now
            text = self.current_status()
            if text != self._last_status:
                self._notifier.status(text)
                self._last_status = text
