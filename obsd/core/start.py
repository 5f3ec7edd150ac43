"""Whether a run may start now: the checks `start` makes, as a refusal or a go-ahead (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from obsd.core.config import MAX_TARGET_AHEAD
from obsd.core.protocol import ErrorCode
from obsd.core.state import DaemonState
from obsd.core.status_text import duration_text
from obsd.core.timing import epoch_ns
from obsd.core.token import TokenInfo, judge_expiry
from obsd.core.token_refresh import too_late


class Refusal(msgspec.Struct, frozen=True):
    """`start` says no, with this code and a message that says what to do."""

    code: ErrorCode
    message: str


class GoAhead(msgspec.Struct, frozen=True):
    """A run may start: aimed at `target_ns`, with the token's info and any warnings."""

    target_ns: int
    token: TokenInfo | None
    warnings: list[str]


def check_start(
    state: DaemonState,
    token: TokenInfo | None,
    token_problem: str | None,
    now: datetime,
    can_log_in: bool = False,
) -> Refusal | GoAhead:
    """Every check `start` makes, in the documented order (docs/protocol.md §5.11).

    `can_log_in`: İTÜ credentials are kept, so a missing or short-lived token is no refusal:
    the run logs in for a fresh one before the target (core/token_refresh.py).
    """
    if state.active_run is not None:
        run = state.runs[state.active_run]
        return Refusal(
            ErrorCode.RUN_IN_PROGRESS, f"run {run.run_id} is {run.phase}; cancel it first"
        )
    config = state.config
    if not config.ecrn and not config.scrn:
        return Refusal(ErrorCode.NOT_READY, "nothing to register: configure ecrn and/or scrn")
    if config.target is None:
        return Refusal(ErrorCode.NOT_READY, "no target: configure the opening instant (target)")
    target = datetime.fromisoformat(config.target)
    late = now - target
    window = timedelta(seconds=config.late_start_window)
    if late >= window:  # a window of 0: any target not ahead has passed
        beyond = f", more than late_start_window ({window}) ago" if window else ""
        return Refusal(
            ErrorCode.NOT_READY,
            f"the target {config.target} has passed{beyond}; configure the new opening",
        )
    if target > now + MAX_TARGET_AHEAD:
        # Only a log written before this limit existed can hold such a target.
        return Refusal(
            ErrorCode.NOT_READY,
            f"the target {config.target} is more than "
            f"{MAX_TARGET_AHEAD.days} days ahead; configure "
            "the right one",
        )
    warnings: list[str] = []
    # Too close to the target (or past it) for a login: the token must do as it is.
    can_log_in = can_log_in and not too_late(epoch_ns(target), epoch_ns(now))
    if token is None and not can_log_in:
        return Refusal(
            ErrorCode.TOKEN_MISSING,
            token_problem or "no OBS token: configure one (obsctl configure --token -)",
        )
    if token is not None:
        # A late start fires now: the token must last from then, not from the passed target.
        verdict = judge_expiry(token, max(target, now), now)
        if verdict.error and not can_log_in:
            return Refusal(ErrorCode.TOKEN_EXPIRED, verdict.error)
        if verdict.error:
            warnings.append(f"{verdict.error.split(';')[0]}; obsd logs in for a fresh one")
        warnings += verdict.warnings
    if late >= timedelta(0):
        warnings.append(
            f"the target passed {duration_text(late.total_seconds())} ago: a late start, the "
            "first POST goes out at once (never inside OBS's debounce of an earlier one)"
        )
    calibration = state.calibration
    if calibration is not None and calibration.ntp_error:
        warnings.append(
            f"the last calibration found {calibration.ntp_error}; the run keeps trying until "
            "the opening and will not fire on an unknown clock"
        )
    return GoAhead(epoch_ns(target), token, warnings)
