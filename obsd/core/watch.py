"""A watch run's decisions (pure): how often to read the page, what a reading and an answer mean.

A watch waits for a seat in a full section during the add/drop days. It reads OBS's public
schedule, which costs OBS one page and no token, and POSTs only when the page shows a free
seat: then through the same rules as a timed run (core/policy.py). On VAL06 the seat went to
someone else first, and the watch goes back to reading the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from obsd.core.phases import Phase
from obsd.core.policy import NextPost, Stop, next_step
from obsd.core.results import FULL_CODE, Outcome
from obsd.core.runs import RequestRecord, RunState
from obsd.core.schedule_page import Seats
from obsd.core.timing import NS, epoch_ns, instant

# The fastest a watch reads its page. Public watchers poll every 30 s to 16 min, and İTÜ warned
# in 2022 that a high volume of requests may be treated as an attack; the page is also shared
# by every watch of its branch, so once a minute is as fast as obsd asks for it.
POLL_FLOOR_S: Final = 60.0
# Each wait is lengthened by up to this fraction at random (never shortened below the floor),
# so that watches started together do not poll in step.
POLL_JITTER: Final = 0.2
# Any two schedule requests of one daemon, whatever their branches, are this far apart: the
# simulator's threshold is 10 s, and public watchers never go below 15 s.
REQUEST_GAP_S: Final = 15.0
# A 429, a 5xx or no answer doubles the wait, up to this: a struggling page is left alone.
BACKOFF_CAP_S: Final = 15 * 60.0
# The page unreadable for this long: the watch is stalled, and the student is told.
STALL_AFTER_S: Final = 15 * 60.0
# A token with less than this left is renewed by a login (if obsd keeps the credentials);
# without one the watch is stalled, since a POST with it would be refused and end the watch.
TOKEN_MARGIN_S: Final = 10 * 60.0
# After a failed login, the next one waits this long: the single sign-on is not to be hammered.
LOGIN_RETRY_S: Final = 30 * 60.0
# After a seat went to someone else, a page that still shows it free is behind the truth: the
# watch POSTs again only once the page's numbers change, or after this long without a change
# (a seat freed and taken in between would leave the same numbers).
SAME_SEAT_AGAIN_S: Final = 10 * 60.0
# A timed run of the same OBS whose target is this close (or which is registering) has OBS to
# itself: its final approach, calibration and retry window see no watch request at all.
QUIET_BEFORE_TARGET_S: Final = 10 * 60.0

# Why a drop is dangerous, said by `watch_seat` and the CLI before one is accepted.
DROP_RISK: Final = (
    "OBS applies a drop even when the add in the same request fails (there is no conditional "
    "swap): if the seat is taken by someone else first, you lose the dropped course and do not "
    "get the new one"
)


# More doublings than any floor needs to reach the cap (60 s * 2**5 > 15 min).
_DOUBLINGS_TO_CAP: Final = 16


class BackToWatching(msgspec.Struct, frozen=True):
    """The seat went to someone else first: read the page again."""

    reason: str


def poll_delay_s(every_s: float, failures: int, draw: float) -> float:
    """Seconds until the next read: `every_s` (at least the floor), doubled per failure, jittered.

    `draw` is a uniform random number in [0, 1), passed in so the arithmetic stays pure.
    """
    base = max(every_s, POLL_FLOOR_S)
    # The exponent is bounded: days of failures must not overflow the float.
    doubled = base * 2 ** min(failures, _DOUBLINGS_TO_CAP)
    backed_off = min(doubled, max(BACKOFF_CAP_S, base)) if failures else base
    return backed_off * (1 + POLL_JITTER * draw)


def free_seat(plan_crn: str, page: dict[str, Seats], branch: str) -> Seats:
    """The watched section's seats; a page without it is the user's mistake, said plainly."""
    found = page.get(plan_crn)
    if found is None:
        raise LookupError(
            f"CRN {plan_crn} is not on the {branch} schedule page; check the CRN and that "
            f"--branch is the letters of its course code"
        )
    return found


def seat_lost(run: RunState) -> RequestRecord | None:
    """The watch's last POST, if OBS answered it that the seat had gone (VAL06)."""
    plan = run.watch
    assert plan is not None
    last = run.requests[-1] if run.requests else None
    if last is None or last.outcome != Outcome.ANSWERED:
        return None  # A lost answer may have won the seat: only a new POST can tell.
    return last if last.codes.get(plan.crn) == FULL_CODE else None


def worth_a_post(run: RunState, wall_now_ns: int) -> bool:
    """Whether a free seat on the page is worth a POST, or the one just lost, shown again."""
    last = seat_lost(run)
    if last is None:
        return True
    lost_ns = last.responded_ns or last.planned_ns
    if run.seats is not None and run.seats.at_ns > lost_ns:
        return True  # The page has changed since.
    return wall_now_ns - lost_ns >= SAME_SEAT_AGAIN_S * NS


def quiet_reason(timed: RunState | None, watch: RunState, true_now_ns: int) -> str | None:
    """Why the watch must leave OBS alone now (a timed run of the same OBS close to its shot)."""
    if timed is None or timed.config.obs_base_url != watch.config.obs_base_url:
        return None
    left_s = (timed.target_ns - true_now_ns) / NS
    if timed.phase != Phase.REGISTERING and left_s > QUIET_BEFORE_TARGET_S:
        return None
    return (
        f"run {timed.run_id} fires at {instant(timed.target_ns).strftime('%H:%M:%S')}; "
        "the watch leaves OBS to it until it is done"
    )


def ended(run: RunState, wall_now_ns: int) -> Stop | None:
    """The watch's time is up (`until` passed)."""
    plan = run.watch
    if plan is None or plan.until_ns is None or wall_now_ns < plan.until_ns:
        return None
    return Stop(
        Phase.DONE,
        f"watched until {instant(plan.until_ns).isoformat(timespec='seconds')}; "
        f"no seat in {plan.crn} was taken",
    )


def after_answer(run: RunState, others: list[RequestRecord]) -> BackToWatching | NextPost | Stop:
    """What the watch does after an answer (or a lost one): watch again, POST again, or end."""
    step = next_step(run, others)
    plan = run.watch
    assert plan is not None
    if seat_lost(run) is None or (isinstance(step, Stop) and step.phase == Phase.FAILED):
        return step
    if len(run.requests) >= run.config.max_attempts:
        return Stop(
            Phase.DONE,
            f"max_attempts ({run.config.max_attempts}) reached; {plan.crn} is still full",
        )
    return BackToWatching("the seat went to someone else first (VAL06)")


def token_stall(
    has_token: bool, expires: str | None, wall_now_ns: int, can_log_in: bool
) -> str | None:
    """Why the token stops the watch, when no login renews it (the same words until a new
    token: a stall is told once)."""
    if not has_token:
        if can_log_in:
            return (
                "no OBS token: the login for one failed; obsd tries again every 30 min "
                "(obsctl login --check shows why)"
            )
        return "no OBS token: configure one (obsctl configure --token -)"
    if expires is None or can_log_in:
        return None
    expiry = datetime.fromisoformat(expires)
    if (epoch_ns(expiry) - wall_now_ns) / NS > TOKEN_MARGIN_S:
        return None
    return (
        f"the OBS token expires at {expiry.isoformat(timespec='seconds')}: a POST after it "
        "would be refused; configure a fresh one (obsctl configure --token -) or keep the "
        "İTÜ credentials (obsctl login)"
    )


def wants_login(
    has_token: bool,
    expires: str | None,
    wall_now_ns: int,
    last_refresh_ns: int | None,
    failed: bool,
) -> bool:
    """Whether the watch logs in for a fresh token now (credentials kept)."""
    if has_token:
        if expires is None:
            return False  # Its expiry is unknown: a 401 would tell, and end the watch.
        left_s = (epoch_ns(datetime.fromisoformat(expires)) - wall_now_ns) / NS
        if left_s > TOKEN_MARGIN_S:
            return False
    return not (failed and last_refresh_ns and wall_now_ns - last_refresh_ns < LOGIN_RETRY_S * NS)
