"""What a person is told and when (pure): a run's end, a late start, problems before the target,
and never a delivery near a shot."""

from __future__ import annotations

import msgspec
import pytest

from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    CrnResult,
    CrnUpdatePayload,
    DonePayload,
    Event,
    LateStartPayload,
    MessagePayload,
    OpeningMissedPayload,
    PhaseChangedPayload,
    RequestArmedPayload,
    RunCancelledPayload,
    RunCreatedPayload,
    TokenRefreshFailedPayload,
    WatchPlan,
    WatchStalledPayload,
    make_event,
)
from obsd.core.login import LoginFailure
from obsd.core.notices import (
    HOLD_BEFORE_SHOT_S,
    Notice,
    NoticeKind,
    may_deliver,
    notice_for,
    problem_key,
    still_news,
)
from obsd.core.phases import Phase
from obsd.core.results import CrnKind, CrnState, Outcome
from obsd.core.state import DaemonState, apply
from obsd.core.timing import NS
from obsd.core.token import TokenInfo
from obsd.core.token_refresh import RefreshKind
from tests.core.payloads import calibration

TARGET_NS = 1_768_474_800 * NS
FIRE_NS = TARGET_NS + NS // 1000
RUN = "r1"
ACTOR = Actor(uid=1000, pid=7)


def history(*payloads: msgspec.Struct) -> tuple[DaemonState, Event]:
    """The state after `payloads`, and the last event."""
    state = DaemonState()
    event: Event | None = None
    for seq, payload in enumerate(payloads, 1):
        event = make_event(payload, seq, TARGET_NS - 3600 * NS + seq)
        state = apply(state, event)
    assert event is not None
    return state, event


def created(backup: dict[str, str] | None = None) -> RunCreatedPayload:
    config = Config(ecrn=("21234", "22001"), scrn=("20456",), backup=backup or {})
    return RunCreatedPayload(RUN, ACTOR, config, TokenInfo(fingerprint="f", exp=None), TARGET_NS)


def result(crn: str, state: CrnState, kind: CrnKind = CrnKind.ECRN) -> CrnResult:
    return CrnResult(crn=crn, kind=kind, state=state, code=None, message=f"{crn} {state}")


def answered(*results: CrnResult) -> list[msgspec.Struct]:
    """A first POST and its answer."""
    return [
        PhaseChangedPayload(RUN, Phase.REGISTERING),
        RequestArmedPayload(RUN, 1, ["21234", "22001"], ["20456"], FIRE_NS),
        CrnUpdatePayload(
            run_id=RUN,
            attempt=1,
            outcome=Outcome.ANSWERED,
            http_status=200,
            sent_ns=FIRE_NS,
            responded_ns=FIRE_NS + NS // 5,
            results=list(results),
        ),
    ]


def told(*payloads: msgspec.Struct, instance: str | None = None) -> Notice | None:
    state, event = history(*payloads)
    return notice_for(event, state, instance)


def test_a_run_done_says_how_many_courses_were_added_and_each_result() -> None:
    results = [
        result("21234", CrnState.SUCCESS),
        result("22001", CrnState.FULL),
        result("20456", CrnState.SUCCESS, CrnKind.SCRN),
    ]
    notice = told(
        created(),
        *answered(*results),
        DonePayload(RUN, Phase.DONE, "every CRN has a final result", results),
        instance="ayse",
    )
    assert notice is not None and notice.kind == NoticeKind.RUN_DONE
    assert notice.title == "obsd@ayse: run done, 1 of 2 courses added"
    assert notice.message.splitlines() == [
        "every CRN has a final result",
        "21234 add: success",
        "22001 add: full (22001 full)",
        "20456 drop: success",
    ]
    assert notice.run_id == RUN and notice.instance == "ayse"
    assert notice.event is not None and notice.event.__struct_config__.tag == "done"


def test_a_course_won_through_its_backup_counts_as_added() -> None:
    first = [result("21234", CrnState.SUCCESS), result("22001", CrnState.FULL)]
    backup = [result("22002", CrnState.SUCCESS)]
    update = CrnUpdatePayload(
        run_id=RUN,
        attempt=2,
        outcome=Outcome.ANSWERED,
        http_status=200,
        sent_ns=FIRE_NS + 4 * NS,
        responded_ns=FIRE_NS + 5 * NS,
        results=backup,
    )
    notice = told(
        created(backup={"22001": "22002"}),
        *answered(*first),
        RequestArmedPayload(RUN, 2, ["22002"], [], FIRE_NS + 4 * NS),
        update,
        DonePayload(RUN, Phase.DONE, "done", [*first, *backup]),
    )
    assert notice is not None and notice.title == "obsd: run done, 2 of 2 courses added"


def test_a_failed_run_and_a_cancelled_one_are_told_as_such() -> None:
    failed = told(created(), DonePayload(RUN, Phase.FAILED, "OBS refused the token (401)", []))
    assert failed is not None and failed.kind == NoticeKind.RUN_FAILED
    assert "OBS refused the token (401)" in failed.message
    cancelled = told(created(), RunCancelledPayload(RUN, ACTOR, Phase.WAITING))
    assert cancelled is not None and cancelled.kind == NoticeKind.RUN_CANCELLED
    assert cancelled.title == "obsd: run cancelled while waiting"


@pytest.mark.parametrize(
    ("payload", "kind", "words"),
    [
        (LateStartPayload(RUN, 130.5), NoticeKind.LATE_START, "a late start, 2 min 10 s after"),
        (
            OpeningMissedPayload(RUN, 45.0),
            NoticeKind.OPENING_MISSED,
            "the opening was missed by 45 s",
        ),
    ],
)
def test_a_late_start_and_a_missed_opening_are_told(
    payload: msgspec.Struct, kind: NoticeKind, words: str
) -> None:
    notice = told(created(), payload)
    assert notice is not None and notice.kind == kind and words in notice.title


def test_a_warning_before_the_target_needs_a_person() -> None:
    warning = MessagePayload("no trustworthy time; trying again", "warning", RUN)
    notice = told(created(), PhaseChangedPayload(RUN, Phase.WAITING), warning)
    assert notice is not None and notice.kind == NoticeKind.ATTENTION
    assert notice.message == "no trustworthy time; trying again"


@pytest.mark.parametrize(
    "payloads",
    [
        # Information is no news; after the target, the run's end tells how it went.
        [PhaseChangedPayload(RUN, Phase.WAITING), MessagePayload("the time sources agree")],
        [*answered(), MessagePayload("attempt 1: HTTP 503", "warning", RUN)],
        # Only the run's own lines: a daemon-wide one is not about a target.
        [MessagePayload("a warning of no run", "warning")],
        [PhaseChangedPayload(RUN, Phase.WAITING)],
    ],
    ids=["info", "after-the-target", "no-run", "other-events"],
)
def test_other_events_tell_nobody(payloads: list[msgspec.Struct]) -> None:
    assert told(created(), *payloads) is None


def waiting() -> DaemonState:
    state, _ = history(
        created(), PhaseChangedPayload(RUN, Phase.WAITING), calibration(RUN, FIRE_NS, 0.0)
    )
    return state


def test_deliveries_go_out_while_a_run_waits_far_from_its_shot() -> None:
    assert may_deliver(DaemonState(), TARGET_NS)
    assert may_deliver(waiting(), FIRE_NS - int(HOLD_BEFORE_SHOT_S * NS) - 1)


def test_no_delivery_starts_near_the_shot_or_while_the_run_registers() -> None:
    assert not may_deliver(waiting(), FIRE_NS - int(HOLD_BEFORE_SHOT_S * NS))
    assert not may_deliver(waiting(), FIRE_NS)
    registering, _ = history(created(), *answered())
    assert not may_deliver(registering, FIRE_NS + 3600 * NS)


def test_a_notice_is_one_json_document_with_the_event_that_caused_it() -> None:
    notice = told(created(), LateStartPayload(RUN, 2.0))
    assert notice is not None
    document = msgspec.json.decode(msgspec.json.encode(notice))
    assert document["kind"] == "late_start" and document["run_id"] == RUN
    assert document["event"]["type"] == "late_start"
    assert document["event"]["payload"]["late_by_s"] == 2.0


def test_attention_held_past_the_target_is_no_longer_news() -> None:
    warning = MessagePayload("NTP server pool: kiss-o'-death RATE", "warning", RUN)
    notice = told(created(), PhaseChangedPayload(RUN, Phase.WAITING), warning)
    assert notice is not None and still_news(notice, waiting())
    registering, _ = history(created(), *answered())
    assert not still_news(notice, registering)
    late = told(created(), LateStartPayload(RUN, 2.0))
    assert late is not None and still_news(late, registering)


def test_a_problem_whose_figures_change_is_one_problem() -> None:
    first = "the system clock is +612.3 ms off NTP time (obsd corrects for it)"
    later = "the system clock is +615.0 ms off NTP time (obsd corrects for it)"
    assert problem_key(first) == problem_key(later)
    assert problem_key(first) != problem_key("only 12 MiB free on the state disk")


def watch_created() -> RunCreatedPayload:
    config = Config(ecrn=("21234",), retry_full=True)
    plan = WatchPlan(crn="21234", branch="BLG", every_s=60.0)
    return RunCreatedPayload(RUN, ACTOR, config, None, TARGET_NS, plan)


def watch_post(code_state: CrnState) -> list[msgspec.Struct]:
    return [
        PhaseChangedPayload(RUN, Phase.REGISTERING, "a seat is free"),
        RequestArmedPayload(RUN, 1, ["21234"], [], FIRE_NS),
        CrnUpdatePayload(
            run_id=RUN,
            attempt=1,
            outcome=Outcome.ANSWERED,
            http_status=200,
            sent_ns=FIRE_NS,
            responded_ns=FIRE_NS + NS // 5,
            results=[result("21234", code_state)],
        ),
    ]


def test_a_watch_that_took_its_seat_says_so() -> None:
    done = DonePayload(RUN, Phase.DONE, "every CRN has a final result", [])
    notice = told(watch_created(), *watch_post(CrnState.SUCCESS), done)
    assert notice is not None
    assert notice.kind == NoticeKind.SEAT_TAKEN and notice.title == "obsd: seat taken in 21234"
    assert "21234 add: success" in notice.message


def test_a_watch_that_ended_without_a_seat_or_was_cancelled_says_so() -> None:
    ended = DonePayload(RUN, Phase.DONE, "watched until 18:00; no seat in 21234 was taken", [])
    notice = told(watch_created(), ended)
    assert notice is not None
    assert notice.kind == NoticeKind.WATCH_ENDED
    assert notice.title == "obsd: watch of 21234 done, no seat taken"
    assert "watched until 18:00" in notice.message
    cancelled = told(watch_created(), RunCancelledPayload(RUN, ACTOR, Phase.WATCHING))
    assert cancelled is not None
    assert cancelled.kind == NoticeKind.WATCH_ENDED and "cancelled" in cancelled.title


def test_a_stalled_watch_and_its_failed_login_are_told() -> None:
    stalled = WatchStalledPayload(
        run_id=RUN, cause="page", reason="the page is unreadable", since_ns=0
    )
    notice = told(watch_created(), stalled)
    assert notice is not None
    assert notice.kind == NoticeKind.WATCH_STALLED
    assert notice.title == "obsd: the watch of 21234 is stalled"
    assert notice.message == "the page is unreadable"
    failed = TokenRefreshFailedPayload(
        run_id=RUN,
        kind=RefreshKind.LOGIN,
        at_ns=0,
        code=LoginFailure.WRONG_PASSWORD,
        message="wrong password",
        steps=[],
        kept=None,
    )
    login = told(watch_created(), *watch_post(CrnState.FULL), failed)
    assert login is not None
    assert login.kind == NoticeKind.WATCH_STALLED and "wrong password" in login.message
