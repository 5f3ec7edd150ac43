"""The wait before the first shot, as a pure "what next" the run driver executes.

From far to near: a countdown event now and then (each second only in the last minute), NTP
re-checked every ten minutes and once more shortly before the instant, keep-alive probes only
in the last minute (no traffic to OBS for hours before) and never in the last two seconds
(no answer may be in flight at the instant), and a quiet final approach with no events,
probes or disk writes at all.
"""

from __future__ import annotations

from typing import Final

import msgspec

from obsd.core.timing import NS

# Probes keep the connection warm only in the last minute, this often,
WARM_UP_S: Final = 60.0
KEEPALIVE_EVERY_S: Final = 5.0
# and stop early enough that no answer is in flight on the connection at the instant.
STOP_PROBING_BEFORE_S: Final = 2.0
# NTP again shortly before the instant, and every so often during a long wait.
RECHECK_NTP_BEFORE_S: Final = 10.0
RECHECK_NTP_EVERY_S: Final = 600.0
# The last stretch is left quiet: no events, probes or disk writes on the event loop.
FINAL_APPROACH_S: Final = 1.5
# Countdown events: each second in the last minute, then sparser, so that a wait of hours
# does not fill the log with ticks.
COUNTDOWN_TICKS: Final = ((60.0, 1.0), (600.0, 10.0), (float("inf"), 60.0))
# Never plan a wake-up closer than this: a zero sleep would spin the event loop.
MIN_STEP_S: Final = 0.001


class WaitProgress(msgspec.Struct, frozen=True):
    """What the wait has done so far (monotonic ns), which the next step depends on."""

    last_probe_ns: int
    last_ntp_ns: int
    rechecked_before_shot: bool = False


class FinalApproach(msgspec.Struct, frozen=True):
    """Stop waiting here: the quiet final approach to the shot begins."""


class RecheckNtp(msgspec.Struct, frozen=True):
    """Query NTP again; `before_shot` marks the one re-check close to the instant."""

    before_shot: bool


class ProbeObs(msgspec.Struct, frozen=True):
    """Send a keep-alive HEAD to OBS."""


class Tick(msgspec.Struct, frozen=True):
    """Say how long remains (seconds), then sleep until `wake_ns` (monotonic)."""

    remaining_s: float
    wake_ns: int


WaitStep = FinalApproach | RecheckNtp | ProbeObs | Tick


def countdown_tick(remaining_s: float) -> float:
    """Seconds between countdown events when `remaining_s` are left."""
    return next(tick for limit, tick in COUNTDOWN_TICKS if remaining_s <= limit)


def next_wait_step(shot_ns: int, now_ns: int, progress: WaitProgress) -> WaitStep:
    """What to do at monotonic `now_ns` while waiting for a shot at monotonic `shot_ns`."""
    remaining = (shot_ns - now_ns) / NS
    if remaining <= FINAL_APPROACH_S:
        return FinalApproach()
    if remaining <= RECHECK_NTP_BEFORE_S and not progress.rechecked_before_shot:
        return RecheckNtp(before_shot=True)
    if now_ns - progress.last_ntp_ns > RECHECK_NTP_EVERY_S * NS:
        return RecheckNtp(before_shot=False)
    if (
        STOP_PROBING_BEFORE_S < remaining <= WARM_UP_S
        and now_ns - progress.last_probe_ns >= KEEPALIVE_EVERY_S * NS
    ):
        return ProbeObs()
    # Wake on the next whole tick of the countdown, or at the final approach.
    tick = countdown_tick(remaining)
    step = min(remaining % tick or tick, remaining - FINAL_APPROACH_S)
    return Tick(round(remaining, 1), now_ns + int(max(step, MIN_STEP_S) * NS))
