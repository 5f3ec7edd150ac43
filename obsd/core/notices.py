"""What a person is told, and when (pure): a run's end, a late start, and what needs them first.

A student is not watching when a run ends; the operator is not watching when the clock or the
disk goes wrong hours before the opening. `notice_for` picks the events worth a message from
the log, `attention` turns `health` problems into messages before a run's target, and
`may_deliver` keeps every delivery clear of the shot: a command or an HTTP request started
close to it would take CPU and network from the one request that matters.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

import msgspec

from obsd.core.events import (
    Done,
    Event,
    LateStart,
    Message,
    OpeningMissed,
    RunCancelled,
    TokenRefreshFailed,
    WatchStalled,
)
from obsd.core.phases import Phase
from obsd.core.results import CrnKind, CrnState
from obsd.core.runs import RunState
from obsd.core.state import DaemonState
from obsd.core.status_text import late_text, next_shot_ns
from obsd.core.timing import NS
from obsd.core.waiting import RECHECK_NTP_BEFORE_S

# A notification command or URL gets this long, then it is given up (and a command killed):
# a phone that is told a minute late is told; a stuck helper must not pile up.
DELIVERY_TIMEOUT_S: Final = 10.0
# Deliveries stop this long before a shot: one started just before is over before the
# time is re-checked for the last times (10 s before the shot), and so before the final
# approach, with a second to spare.
HOLD_BEFORE_SHOT_S: Final = max(RECHECK_NTP_BEFORE_S) + DELIVERY_TIMEOUT_S + 1.0
# Warnings before a target repeat (a flapping NTP server, a disk filling slowly): a person is
# told each different one once, and no more than this many per run, not once a minute.
ATTENTION_PER_RUN: Final = 8
# Notices waiting for the end of a quiet spell; more than a run can produce.
QUEUE_LIMIT: Final = 64
# Phases in which a run still waits for its target: what goes wrong then needs a person.
BEFORE_TARGET: Final = frozenset({Phase.CALIBRATING, Phase.WAITING})


class NoticeKind(StrEnum):
    """Why a person is told."""

    RUN_DONE = "run_done"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    LATE_START = "late_start"
    OPENING_MISSED = "opening_missed"
    ATTENTION = "attention"
    # A watch run's (add/drop days): the seat is ours, the watch ended without it, or it is stuck.
    SEAT_TAKEN = "seat_taken"
    WATCH_ENDED = "watch_ended"
    WATCH_STALLED = "watch_stalled"


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """One message for a person: what a notification command reads as JSON on stdin."""

    kind: NoticeKind
    title: str
    message: str
    run_id: str | None
    # The student's instance on a shared VPS (obsd@NAME), so one phone can follow several.
    instance: str | None = None
    # The log event that caused it (none for a `health` problem); it never holds a secret.
    event: Event | None = None


_WON: Final = frozenset({CrnState.SUCCESS, CrnState.ALREADY})
_FIGURES: Final = re.compile(r"[+-]?[0-9][0-9.:,]*")


def _results_text(run: RunState) -> str:
    lines = [
        f"{c.crn} {'drop' if c.kind == CrnKind.SCRN else 'add'}: {c.state}"
        + (f" ({c.message})" if c.message and c.state not in _WON else "")
        for c in run.crns
    ]
    return "\n".join(lines)


def _courses_won(run: RunState) -> int:
    """Adds asked for that ended added, by the CRN itself or by its backup."""
    won = {c.backup_for or c.crn for c in run.crns if c.kind == CrnKind.ECRN and c.state in _WON}
    return sum(c.kind == CrnKind.ECRN and c.backup_for is None and c.crn in won for c in run.crns)


def _prefix(instance: str | None) -> str:
    return f"obsd@{instance}" if instance else "obsd"


def _run_ended(event: Done | RunCancelled, run: RunState, instance: str | None) -> Notice:
    name = _prefix(instance)
    if isinstance(event, RunCancelled):
        kind = NoticeKind.RUN_CANCELLED
        title = f"{name}: run cancelled while {event.payload.phase}"
        body = "The run was cancelled; nothing more is sent."
    else:
        won = _courses_won(run)
        wanted = sum(c.kind == CrnKind.ECRN and c.backup_for is None for c in run.crns)
        failed = event.payload.phase == Phase.FAILED
        kind = NoticeKind.RUN_FAILED if failed else NoticeKind.RUN_DONE
        title = f"{name}: run {event.payload.phase}, {won} of {wanted} courses added"
        body = event.payload.reason
    results = _results_text(run)
    return Notice(
        kind=kind,
        title=title,
        message=f"{body}\n{results}" if results else body,
        run_id=run.run_id,
        instance=instance,
        event=event,
    )


def _watch_ended(event: Done | RunCancelled, run: RunState, instance: str | None) -> Notice:
    plan = run.watch
    assert plan is not None
    name = _prefix(instance)
    if isinstance(event, RunCancelled):
        kind, title, body = (
            NoticeKind.WATCH_ENDED,
            f"{name}: watch of {plan.crn} cancelled",
            "The watch was cancelled; nothing more is read or sent.",
        )
    elif _courses_won(run):
        kind, title, body = (
            NoticeKind.SEAT_TAKEN,
            f"{name}: seat taken in {plan.crn}",
            f"A seat freed in {plan.crn} and obsd took it.",
        )
    else:
        kind, title, body = (
            NoticeKind.WATCH_ENDED,
            f"{name}: watch of {plan.crn} {event.payload.phase}, no seat taken",
            event.payload.reason,
        )
    return Notice(
        kind=kind,
        title=title,
        message=f"{body}\n{_results_text(run)}",
        run_id=run.run_id,
        instance=instance,
        event=event,
    )


def _watch_stalled(run: RunState, problem: str, instance: str | None, event: Event) -> Notice:
    plan = run.watch
    assert plan is not None
    return Notice(
        kind=NoticeKind.WATCH_STALLED,
        title=f"{_prefix(instance)}: the watch of {plan.crn} is stalled",
        message=problem,
        run_id=run.run_id,
        instance=instance,
        event=event,
    )


def notice_for(event: Event, state: DaemonState, instance: str | None = None) -> Notice | None:
    """The notice an event just folded into `state` calls for, if any."""
    name = _prefix(instance)
    match event:
        case Done() | RunCancelled():
            run = state.runs.get(event.payload.run_id)
            if run is None:
                return None
            ended = _run_ended if run.watch is None else _watch_ended
            return ended(event, run, instance)
        case WatchStalled():
            run = state.runs.get(event.payload.run_id)
            if run is None or run.watch is None or event.payload.reason is None:
                return None  # The end of a stall is seen in status, not worth a message.
            return _watch_stalled(run, event.payload.reason, instance, event)
        case LateStart() | OpeningMissed():
            missed = isinstance(event, OpeningMissed)
            text = late_text(event.payload.late_by_s, opening_missed=missed)
            return Notice(
                kind=NoticeKind.OPENING_MISSED if missed else NoticeKind.LATE_START,
                title=f"{name}: {text}",
                message=f"{text[0].upper()}{text[1:]}: the run fires at once, and its end "
                "is told when it comes.",
                run_id=event.payload.run_id,
                instance=instance,
                event=event,
            )
        case TokenRefreshFailed():
            run = state.runs.get(event.payload.run_id)
            if run is None or (run.phase not in BEFORE_TARGET and run.watch is None):
                return None
            kept = event.payload.kept
            lasts = (
                f"; the run keeps its token, valid until {kept.exp}" if kept and kept.exp else ""
            )
            problem = (
                f"the {event.payload.kind} for a fresh OBS token failed "
                f"({event.payload.code}): {event.payload.message}{lasts}"
            )
            if run.watch is not None:
                return _watch_stalled(run, problem, instance, event)
            return attention(problem, run, instance, event)
        case Message() if event.payload.level != "info":
            run_id = event.payload.run_id
            run = state.runs.get(run_id) if run_id else None
            if run is None or run.phase not in BEFORE_TARGET:
                return None  # After the target the run's end says how it went.
            return attention(event.payload.message, run, instance, event)
    return None


def attention(
    problem: str, run: RunState, instance: str | None = None, event: Event | None = None
) -> Notice:
    """A problem that needs a person before `run`'s target."""
    return Notice(
        kind=NoticeKind.ATTENTION,
        title=f"{_prefix(instance)} needs attention before the opening",
        message=problem,
        run_id=run.run_id,
        instance=instance,
        event=event,
    )


def problem_key(message: str) -> str:
    """What makes two problems the same one: their words, not their live figures.

    "the system clock is +612.3 ms off" and "+615.0 ms off" are one problem, told once.
    """
    return _FIGURES.sub("#", message)


def run_before_target(state: DaemonState) -> RunState | None:
    """The active run, while it still waits for its target."""
    run = state.runs.get(state.active_run) if state.active_run else None
    return run if run is not None and run.phase in BEFORE_TARGET else None


def still_news(notice: Notice, state: DaemonState) -> bool:
    """Whether a held notice is worth sending yet: attention only while its run still waits."""
    if notice.kind != NoticeKind.ATTENTION:
        return True
    run = run_before_target(state)
    return run is not None and run.run_id == notice.run_id


def may_deliver(state: DaemonState, true_now_ns: int) -> bool:
    """Whether a delivery may start now: never near a shot, never while a run registers.

    A registering run's next retry is planned only a second ahead, so its notices wait for
    its end (minutes at most, by max_attempts and the retry spacing).
    """
    run = state.runs.get(state.active_run) if state.active_run else None
    if run is None:
        return True
    if run.phase == Phase.REGISTERING:
        return False
    shot = next_shot_ns(run)
    return shot is None or true_now_ns < shot - int(HOLD_BEFORE_SHOT_S * NS)
