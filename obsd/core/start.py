"""Whether a run may start now: the checks `start` makes, as a refusal or a go-ahead (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from obsd.core.config import MAX_TARGET_AHEAD
from obsd.core.events import WatchPlan
from obsd.core.protocol import ErrorCode, WatchSeat
from obsd.core.state import DaemonState
from obsd.core.status_text import duration_text
from obsd.core.timing import epoch_ns
from obsd.core.token import TokenInfo, judge_expiry
from obsd.core.token_refresh import too_late
from obsd.core.watch import DROP_RISK

# Each watch reads a page a minute and may POST: a handful covers a student's add/drop week.
MAX_WATCHES = 8


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
    # Too close to the target (or past it) for a login: the token must do as it is.
    can_log_in = can_log_in and not too_late(epoch_ns(target), epoch_ns(now))
    # A late start fires now: the token must last from then, not from the passed target.
    warnings = judge_token(token, token_problem, max(target, now), now, can_log_in)
    if isinstance(warnings, Refusal):
        return warnings
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


def judge_token(
    token: TokenInfo | None,
    token_problem: str | None,
    needed_at: datetime | None,
    now: datetime,
    can_log_in: bool,
) -> Refusal | list[str]:
    """Whether the token in use lets a run POST at `needed_at` (None: now): refusal or warnings."""
    if token is None and not can_log_in:
        return Refusal(
            ErrorCode.TOKEN_MISSING,
            token_problem or "no OBS token: configure one (obsctl configure --token -)",
        )
    if token is None:
        return []
    verdict = judge_expiry(token, needed_at, now)
    if verdict.error and not can_log_in:
        return Refusal(ErrorCode.TOKEN_EXPIRED, verdict.error)
    if verdict.error:
        return [f"{verdict.error.split(';')[0]}; obsd logs in for a fresh one", *verdict.warnings]
    return list(verdict.warnings)


class WatchGo(msgspec.Struct, frozen=True):
    """A watch may start with this plan, the token's info, and any warnings."""

    plan: WatchPlan
    token: TokenInfo | None
    warnings: list[str]


def check_watch(
    state: DaemonState,
    token: TokenInfo | None,
    token_problem: str | None,
    now: datetime,
    can_log_in: bool = False,
    *,
    request: WatchSeat,
) -> Refusal | WatchGo:
    """Every check `watch_seat` makes, in the documented order (docs/protocol.md §5.19)."""
    if request.crn in request.drop:
        return Refusal(
            ErrorCode.VALIDATION_ERROR, f"{request.crn} is both watched and dropped; drop another"
        )
    if request.drop and not request.accept_drop_risk:
        return Refusal(
            ErrorCode.VALIDATION_ERROR,
            f"{DROP_RISK}. To watch with a drop anyway, say that you accept this "
            "(accept_drop_risk; obsctl watch-seat --accept-drop-risk)",
        )
    until_ns = None
    if request.until is not None:
        try:
            until = datetime.fromisoformat(request.until)
        except ValueError:
            until = None
        if until is None or until.tzinfo is None:
            return Refusal(
                ErrorCode.VALIDATION_ERROR,
                f"until {request.until!r} is not an ISO-8601 date-time with a UTC offset, "
                "such as 2026-02-10T18:00:00+03:00",
            )
        if until <= now:
            return Refusal(ErrorCode.VALIDATION_ERROR, f"until {request.until} has passed")
        until_ns = epoch_ns(until)
    watches = state.watches
    same = [run.run_id for run in watches if run.watch and run.watch.crn == request.crn]
    if same:
        return Refusal(
            ErrorCode.RUN_IN_PROGRESS, f"CRN {request.crn} is watched already by run {same[0]}"
        )
    if len(watches) >= MAX_WATCHES:
        return Refusal(
            ErrorCode.RUN_IN_PROGRESS,
            f"{MAX_WATCHES} watches are in progress already; cancel one first",
        )
    warnings = judge_token(token, token_problem, None, now, can_log_in)
    if isinstance(warnings, Refusal):
        return warnings
    if request.drop:
        warnings.append(f"{DROP_RISK}; you accepted this")
    plan = WatchPlan(
        crn=request.crn,
        branch=request.branch,
        drop=list(request.drop),
        every_s=request.every,
        until_ns=until_ns,
    )
    return WatchGo(plan, token, warnings)
