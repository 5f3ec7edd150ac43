"""Words for people: the status line `systemctl status` shows, durations, and when to keep quiet.

`status_line` and `in_quiet_window` are pure: the folded state and an instant in, text or a
verdict out.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Final

from obsd.core.config import ISTANBUL
from obsd.core.phases import Phase
from obsd.core.results import CrnKind, CrnState
from obsd.core.runs import CrnStatus, RunState
from obsd.core.state import DaemonState
from obsd.core.timing import MS, NS, epoch_ns, instant
from obsd.core.waiting import FINAL_APPROACH_S


def duration_text(seconds: float) -> str:
    """A duration as people read it: 42 s, 12 min 03 s, 3 h 10 min, 2 d 4 h."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def late_text(late_by_s: float, opening_missed: bool) -> str:
    """How late a run fired (9.9), in the words tail, status and the report use."""
    late = duration_text(late_by_s)
    if opening_missed:
        return f"the opening was missed by {late} (obsd was not running then)"
    return f"a late start, {late} after the target"


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
    moment = instant(epoch_ns).astimezone(ISTANBUL)
    if abs(epoch_ns - now_ns) > SHOW_DATE_BEYOND_S * NS:
        return moment.strftime("%Y-%m-%d %H:%M:%S Istanbul")
    return moment.strftime("%H:%M:%S Istanbul")


def _crn_word(status: CrnStatus) -> str:
    if status.state == CrnState.SUCCESS:
        return "dropped" if status.kind == CrnKind.SCRN else "added"
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
    shots = [_shot_ns(run)] + [request.planned_ns for request in run.requests[-1:]]
    return max(shots)


def true_now_ns(state: DaemonState, wall_ns: int) -> int:
    """The wall clock corrected by the last NTP offset (countdowns match the engine's)."""
    calibration = state.calibration
    offset_ms = calibration.ntp_offset_ms if calibration is not None else None
    return wall_ns + int((offset_ms or 0.0) * MS)


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
    if run.phase == Phase.REGISTERING:
        last = run.requests[-1] if run.requests else None
        if last is None:
            return f"registering: first POST leaving{suffix}"
        answer = "waiting for OBS's answer" if last.outcome is None else "answered"
        return f"registering: attempt {last.attempt} {answer}; {crn_summary(run)}{suffix}"
    shot = _shot_ns(run)
    what = "fires" if run.phase == Phase.WAITING else "target"
    return (
        f"{run.phase}: {what} in {duration_text((shot - now_ns) / NS)} at "
        f"{_istanbul(shot, now_ns)}; {crn_summary(run)}{suffix}"
    )


def _idle(state: DaemonState, now_ns: int) -> str:
    parts = ["idle"]
    target = state.config.target
    if target is not None:
        target_ns = epoch_ns(datetime.fromisoformat(target))
        if target_ns > now_ns:
            parts.append(
                f"target {_istanbul(target_ns, now_ns)} in "
                f"{duration_text((target_ns - now_ns) / NS)}, no run started"
            )
    last = next(reversed(state.runs.values()), None)
    if last is None:
        parts.append("no runs yet")
    else:
        result = f"last run {last.phase}: {crn_summary(last)}"
        if last.phase == Phase.FAILED and last.reason:
            result += f" - {last.reason}"
        parts.append(f"{result} (run {last.run_id})")
    return "; ".join(parts)


def watch_text(run: RunState, now_ns: int) -> str:
    """One watch as people read it: what it waits for, what the page last said, any stall."""
    plan = run.watch
    assert plan is not None
    if run.phase == Phase.REGISTERING:
        text = f"registering for a seat in {plan.crn}"
    else:
        text = f"watching {plan.crn} ({plan.branch})"
    seats = run.seats
    if seats is not None:
        text += f": {seats.enrolled} of {seats.quota} taken at {_istanbul(seats.at_ns, now_ns)}"
    if run.requests:
        text += f", {len(run.requests)} POST{'s' if len(run.requests) > 1 else ''}"
    if run.stalls:
        text += f"; stalled: {'; '.join(run.stalls.values())}"
    return f"{text} (run {run.run_id})"


def status_line(state: DaemonState, true_now_ns: int, damage: str | None = None) -> str:
    """The one line `systemctl status obsd` shows: phase, countdown, last result, watches."""
    if damage is not None:
        return f"read-only: {damage} (obsctl health)"
    watches = state.watches
    if state.active_run is not None:
        line = _active(state.runs[state.active_run], true_now_ns)
        return line + (f"; {_watches(len(watches))} in progress" if watches else "")
    if watches:
        more = f"; {_watches(len(watches) - 1)} more" if len(watches) > 1 else ""
        return watch_text(watches[0], true_now_ns) + more
    return _idle(state, true_now_ns)


def _watches(count: int) -> str:
    return f"{count} watch" + ("es" if count != 1 else "")
