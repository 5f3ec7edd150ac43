"""When a run logs in to İTÜ for a fresh token (pure): the schedule and its bounds.

A JWT lives about six hours, and a run set up the evening before outlives it. With the
student's credentials kept (`login`), a waiting run refreshes its token on this schedule:

1. at its start: a full login. A wrong password is then known hours ahead, not at the shot,
   and the token it gives is kept if it lasts longer than the one configured;
2. 30 minutes before the target: a token minted from that session, or, if the session is
   gone, the one full login again that a run may make. A failure leaves half an hour for a
   person (a notification says so), and the token then lasts hours past the opening;
3. 10 minutes before the target: one more from the session, proving it still works close to
   the shot and still far outside the final approach.

No refresh starts later than `LATEST_BEFORE_S` before the target (before the last minute's
keep-alive probes, with time for a whole login), none after the first POST (so never after
an unknown outcome, and never to get around VAL16 or VAL21), and a run makes at most
`MAX_LOGINS` logins and `MAX_REMINTS` re-mints. A step whose instant passed before a later
refresh was made is served by it: a run started 20 minutes before its target logs in once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import msgspec

from obsd.core.timing import NS

FIRST_REFRESH_BEFORE_S: Final = 30 * 60.0
LAST_REFRESH_BEFORE_S: Final = 10 * 60.0
# The whole flow is given this long (a few requests to the single sign-on), and must be over
# before the last minute, in which the run probes OBS to keep its connection warm.
LOGIN_BUDGET_S: Final = 25.0
LATEST_BEFORE_S: Final = 60.0 + LOGIN_BUDGET_S + 5.0
MAX_LOGINS: Final = 2
MAX_REMINTS: Final = 2


class RefreshKind(StrEnum):
    """How a token is fetched: the whole login, or minted again from the session."""

    LOGIN = "login"
    REMINT = "remint"


class RefreshRecord(msgspec.Struct, frozen=True):
    """One refresh a run made: how, when (true time), and whether it gave a token."""

    kind: RefreshKind
    at_ns: int
    ok: bool
    # A re-mint that found the session gone: the next refresh is a login again.
    session_lost: bool = False


class Refresh(msgspec.Struct, frozen=True):
    """The next refresh to make, and from when (true time)."""

    kind: RefreshKind
    at_ns: int


def _steps(target_ns: int, created_ns: int) -> list[int]:
    """The instants of the schedule's three steps, the first at the run's creation."""
    return [
        created_ns,
        target_ns - int(FIRST_REFRESH_BEFORE_S * NS),
        target_ns - int(LAST_REFRESH_BEFORE_S * NS),
    ]


def next_refresh(
    target_ns: int, created_ns: int, done: tuple[RefreshRecord, ...], has_session: bool
) -> Refresh | None:
    """The refresh a waiting run makes next, if any; `has_session`: a login is still held.

    A step is served by any refresh made at or after its instant, but a re-mint that found
    the session gone, which a login follows at once.
    """
    latest = target_ns - int(LATEST_BEFORE_S * NS)
    logins = sum(r.kind == RefreshKind.LOGIN for r in done)
    remints = sum(r.kind == RefreshKind.REMINT for r in done)
    lost = bool(done) and done[-1].session_lost
    for index, step_ns in enumerate(_steps(target_ns, created_ns)):
        at_ns = min(step_ns, latest)
        if any(r.at_ns >= at_ns for r in done) and not lost:
            continue
        first = index == 0 and not done
        kind = RefreshKind.LOGIN if first or lost or not has_session else RefreshKind.REMINT
        if kind == RefreshKind.LOGIN and logins >= MAX_LOGINS:
            return None
        if kind == RefreshKind.REMINT and remints >= MAX_REMINTS:
            return None
        return Refresh(kind, at_ns)
    return None


def too_late(target_ns: int, now_ns: int) -> bool:
    """Whether it is too close to the target for any login traffic."""
    return now_ns > target_ns - int(LATEST_BEFORE_S * NS)
