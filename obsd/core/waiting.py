"""The wait before the first shot, as a pure "what next" the run driver executes.

From far to near: a countdown event now and then (each second only in the last minute), NTP
re-checked every ten minutes (every thirty seconds while the sources are in conflict or none
can be trusted) and twice shortly before the instant, keep-alive probes only
in the last minute (no traffic to OBS for hours before) and never in the last two seconds
(no answer may be in flight at the instant), and a quiet final approach with no events,
probes or disk writes at all. A jump of the system clock against the monotonic one (a step,
a paused or migrated VM) breaks into any of it: the time is estimated again at once.
"""

from __future__ import annotations

from typing import Final

import msgspec

from obsd.core.events import CalibrationPayload
from obsd.core.timing import NS

# Probes keep the connection warm only in the last minute, this often,
WARM_UP_S: Final = 60.0
KEEPALIVE_EVERY_S: Final = 5.0
# and stop early enough that no answer is in flight on the connection at the instant.
STOP_PROBING_BEFORE_S: Final = 2.0
# NTP again shortly before the instant, twice: the last re-check is late enough that little
# can happen after it, outside the quiet final approach, and two seconds after the one before
# (the politeness rule). Every so often during a long wait, too,
RECHECK_NTP_BEFORE_S: Final = (10.0, 3.5)
RECHECK_NTP_EVERY_S: Final = 600.0
# and more often while no estimate is agreed: the conflict may resolve, the servers come back.
UNSETTLED_RECHECK_EVERY_S: Final = 30.0
# The last stretch is left quiet: no events, probes or disk writes on the event loop.
FINAL_APPROACH_S: Final = 1.5
# Countdown events: each second in the last minute, then sparser, so that a wait of days
# does not fill the log with ticks (a week ahead costs ~18 KiB of them a day).
COUNTDOWN_TICKS: Final = ((60.0, 1.0), (600.0, 10.0), (3600.0, 60.0), (float("inf"), 600.0))
# A re-check of the time more than this far from the shot is written only when it found
# something new (a verdict changed) or the last one written is this old: every ten minutes
# for a week would be ~130 KiB of calibrations a day, saying the same thing.
LOG_EVERY_RECHECK_WITHIN_S: Final = 3600.0
LOG_UNCHANGED_EVERY_S: Final = 3600.0
# Never plan a wake-up closer than this: a zero sleep would spin the event loop.
MIN_STEP_S: Final = 0.001


class WaitProgress(msgspec.Struct, frozen=True):
    """What the wait has done so far (monotonic ns), which the next step depends on."""

    last_probe_ns: int
    last_ntp_ns: int
    rechecks_before_shot: int = 0  # how many of RECHECK_NTP_BEFORE_S are done


class FinalApproach(msgspec.Struct, frozen=True):
    """Stop waiting here: the quiet final approach to the shot begins."""


class RecheckNtp(msgspec.Struct, frozen=True):
    """Estimate the time again; `before_shot` marks the re-checks close to the instant."""

    before_shot: bool
    jumped: bool = False  # the system clock jumped: forget the samples taken before
    # In the last minute, probe OBS first: a Date header from before a step of the clocks
    # would contradict the fresh samples and only delay the shot.
    probe_obs: bool = False


class ProbeObs(msgspec.Struct, frozen=True):
    """Send a keep-alive HEAD to OBS."""


class RefreshToken(msgspec.Struct, frozen=True):
    """Log in (or mint from the session) for a fresh token now (core/token_refresh.py)."""


class Tick(msgspec.Struct, frozen=True):
    """Say how long remains (seconds), then sleep until `wake_ns` (monotonic)."""

    remaining_s: float
    wake_ns: int


WaitStep = FinalApproach | RecheckNtp | ProbeObs | RefreshToken | Tick


def _verdict(calibration: CalibrationPayload) -> tuple[object, ...]:
    """What a re-check says, without its live figures."""
    return (
        calibration.time_status,
        calibration.ntp_error,
        calibration.time_conflict,
        calibration.rtt_error,
        calibration.date_check,
        tuple((view.source, view.verdict) for view in calibration.sources),
    )


def recheck_is_news(
    written: CalibrationPayload | None,
    fresh: CalibrationPayload,
    remaining_s: float,
    since_written_s: float,
) -> bool:
    """Whether a re-check's calibration is written to the log (else it is only used)."""
    return (
        written is None
        or remaining_s <= LOG_EVERY_RECHECK_WITHIN_S
        or since_written_s >= LOG_UNCHANGED_EVERY_S
        or _verdict(fresh) != _verdict(written)
    )


def countdown_tick(remaining_s: float) -> float:
    """Seconds between countdown events when `remaining_s` are left."""
    return next(tick for limit, tick in COUNTDOWN_TICKS if remaining_s <= limit)


def next_wait_step(
    shot_ns: int,
    now_ns: int,
    progress: WaitProgress,
    *,
    settled: bool = True,
    jumped: bool = False,
    refresh_ns: int | None = None,
) -> WaitStep:
    """What to do at monotonic `now_ns` while waiting for a shot at monotonic `shot_ns`.

    `settled`: the estimate is agreed (else re-check more often); `jumped`: the system clock
    moved against the monotonic one since the estimate; `refresh_ns`: when the token is to be
    refreshed next (monotonic), if it is.
    """
    remaining = (shot_ns - now_ns) / NS
    probe = STOP_PROBING_BEFORE_S < remaining <= WARM_UP_S
    if jumped:
        return RecheckNtp(before_shot=False, jumped=True, probe_obs=probe)
    if remaining <= FINAL_APPROACH_S:
        return FinalApproach()
    done = progress.rechecks_before_shot
    if done < len(RECHECK_NTP_BEFORE_S) and remaining <= RECHECK_NTP_BEFORE_S[done]:
        return RecheckNtp(before_shot=True, probe_obs=probe)
    every = RECHECK_NTP_EVERY_S if settled else UNSETTLED_RECHECK_EVERY_S
    if now_ns - progress.last_ntp_ns > every * NS:
        return RecheckNtp(before_shot=False, probe_obs=probe)
    if refresh_ns is not None and now_ns >= refresh_ns:
        return RefreshToken()
    if (
        STOP_PROBING_BEFORE_S < remaining <= WARM_UP_S
        and now_ns - progress.last_probe_ns >= KEEPALIVE_EVERY_S * NS
    ):
        return ProbeObs()
    # Wake on the next whole tick of the countdown, at the next re-check, or at the final
    # approach.
    tick = countdown_tick(remaining)
    step = min(remaining % tick or tick, remaining - FINAL_APPROACH_S)
    if done < len(RECHECK_NTP_BEFORE_S) and remaining > RECHECK_NTP_BEFORE_S[done]:
        step = min(step, remaining - RECHECK_NTP_BEFORE_S[done])
    if refresh_ns is not None:
        step = min(step, (refresh_ns - now_ns) / NS)
    return Tick(round(remaining, 1), now_ns + int(max(step, MIN_STEP_S) * NS))
