"""When a waiting run logs in for a fresh token (pure): at its start, 30 and 10 minutes before
the target, never in the last 90 s, and never more than its bounds."""

from __future__ import annotations

from obsd.core.timing import NS
from obsd.core.token_refresh import (
    LATEST_BEFORE_S,
    Refresh,
    RefreshKind,
    RefreshRecord,
    next_refresh,
    too_late,
)

TARGET = 1_800_000_000 * NS
MIN = 60 * NS
CREATED = TARGET - 8 * 60 * MIN  # set up the evening before
LOGIN, REMINT = RefreshKind.LOGIN, RefreshKind.REMINT


def made(*records: tuple[RefreshKind, int, bool]) -> tuple[RefreshRecord, ...]:
    return tuple(RefreshRecord(kind, at, ok) for kind, at, ok in records)


def test_a_run_set_up_the_evening_before_logs_in_at_once_then_30_and_10_minutes_ahead() -> None:
    assert next_refresh(TARGET, CREATED, (), False) == Refresh(LOGIN, CREATED)
    first = made((LOGIN, CREATED + NS, True))
    # Hours later its session may be gone; the first re-mint says (below), else it serves.
    assert next_refresh(TARGET, CREATED, first, True) == Refresh(REMINT, TARGET - 30 * MIN)
    second = (*first, RefreshRecord(REMINT, TARGET - 30 * MIN, True))
    assert next_refresh(TARGET, CREATED, second, True) == Refresh(REMINT, TARGET - 10 * MIN)
    third = (*second, RefreshRecord(REMINT, TARGET - 10 * MIN, True))
    assert next_refresh(TARGET, CREATED, third, True) is None


def test_a_lost_session_is_followed_by_the_one_login_again() -> None:
    lost = (
        RefreshRecord(LOGIN, CREATED, True),
        RefreshRecord(REMINT, TARGET - 30 * MIN, False, session_lost=True),
    )
    assert next_refresh(TARGET, CREATED, lost, False).kind == LOGIN  # type: ignore[union-attr]
    relogged = (*lost, RefreshRecord(LOGIN, TARGET - 30 * MIN + NS, True))
    assert next_refresh(TARGET, CREATED, relogged, True) == Refresh(REMINT, TARGET - 10 * MIN)
    again = (*relogged, RefreshRecord(REMINT, TARGET - 10 * MIN, False, session_lost=True))
    assert next_refresh(TARGET, CREATED, again, False) is None, "one login again per run"


def test_a_wrong_password_is_tried_once_more_at_30_minutes_then_no_more() -> None:
    wrong = made((LOGIN, CREATED, False))
    assert next_refresh(TARGET, CREATED, wrong, False) == Refresh(LOGIN, TARGET - 30 * MIN)
    twice = made((LOGIN, CREATED, False), (LOGIN, TARGET - 30 * MIN, False))
    assert next_refresh(TARGET, CREATED, twice, False) is None


def test_a_run_started_minutes_before_the_target_logs_in_once() -> None:
    created = TARGET - 5 * MIN
    assert next_refresh(TARGET, created, (), False) == Refresh(LOGIN, created)
    once = made((LOGIN, created, True))
    assert next_refresh(TARGET, created, once, True) is None


def test_nothing_is_planned_inside_the_last_90_seconds() -> None:
    created = TARGET - 60 * NS
    latest = TARGET - int(LATEST_BEFORE_S * NS)
    planned = next_refresh(TARGET, created, (), False)
    assert planned is not None and planned.at_ns == latest
    assert too_late(TARGET, created) and not too_late(TARGET, latest)
