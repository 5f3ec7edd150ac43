"""A watch run's decisions (pure): the poll interval and its floor, quiet near a timed run's shot,
what an answer leads to, the end, and the token."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    CrnResult,
    CrnUpdatePayload,
    RequestArmedPayload,
    RunCreatedPayload,
    SeatsSeenPayload,
    WatchPlan,
)
from obsd.core.phases import Phase
from obsd.core.policy import NextPost, Stop, next_step
from obsd.core.results import CrnKind, CrnState, Outcome
from obsd.core.runs import RunState, new_run, with_request, with_results
from obsd.core.schedule_page import Seats
from obsd.core.timing import NS, epoch_ns
from obsd.core.watch import (
    BACKOFF_CAP_S,
    POLL_FLOOR_S,
    POLL_JITTER,
    QUIET_BEFORE_TARGET_S,
    SAME_SEAT_AGAIN_S,
    BackToWatching,
    after_answer,
    ended,
    free_seat,
    poll_delay_s,
    quiet_reason,
    token_stall,
    wants_login,
    worth_a_post,
)

NOW = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
NOW_NS = epoch_ns(NOW)


def watch(drop: tuple[str, ...] = (), until_ns: int | None = None, **config: object) -> RunState:
    plan = WatchPlan(crn="21234", branch="BLG", drop=list(drop), every_s=60.0, until_ns=until_ns)
    snapshot = msgspec.convert(
        {"ecrn": ["21234"], "scrn": list(drop), "retry_full": True} | config, Config
    )
    return new_run(
        RunCreatedPayload("w", Actor(0, 1), snapshot, None, NOW_NS, plan), NOW.isoformat()
    )


def timed(target_ns: int, phase: Phase = Phase.WAITING) -> RunState:
    config = Config(ecrn=("30000",))
    run = new_run(RunCreatedPayload("t", Actor(0, 1), config, None, target_ns), NOW.isoformat())
    return msgspec.structs.replace(run, phase=phase)


def answered(run: RunState, codes: dict[str, str], at_ns: int = NOW_NS) -> RunState:
    attempt = len(run.requests) + 1
    ecrn = [c.crn for c in run.crns if c.kind == CrnKind.ECRN]
    scrn = [c.crn for c in run.crns if c.kind == CrnKind.SCRN and c.state != CrnState.SUCCESS]
    run = with_request(run, RequestArmedPayload("w", attempt, ecrn, scrn, at_ns))
    states = {"VAL06": CrnState.FULL, "successResult": CrnState.SUCCESS, "VAL21": "rate_limited"}
    results = [
        CrnResult(
            crn=crn,
            kind=CrnKind.SCRN if crn in scrn else CrnKind.ECRN,
            state=msgspec.convert(states[code], CrnState),
            code=code,
            message=code,
        )
        for crn, code in codes.items()
    ]
    return with_results(
        run,
        CrnUpdatePayload(
            run_id="w",
            attempt=attempt,
            outcome=Outcome.ANSWERED,
            http_status=200,
            sent_ns=at_ns,
            responded_ns=at_ns + NS // 10,
            results=results,
        ),
    )


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_the_poll_interval_is_never_below_the_floor_and_jitter_only_lengthens_it(
    draw: float,
) -> None:
    for every in (1.0, 30.0, POLL_FLOOR_S, 300.0):
        delay = poll_delay_s(every, 0, draw)
        assert max(every, POLL_FLOOR_S) <= delay < max(every, POLL_FLOOR_S) * (1 + POLL_JITTER)


def test_failures_double_the_interval_up_to_the_cap() -> None:
    delays = [poll_delay_s(60.0, failures, 0.0) for failures in range(8)]
    assert delays[:5] == [60.0, 120.0, 240.0, 480.0, 900.0]
    assert delays[-1] == BACKOFF_CAP_S
    assert poll_delay_s(60.0, 10**6, 0.999) < BACKOFF_CAP_S * 1.2, "days of failures: no overflow"
    assert poll_delay_s(1800.0, 3, 0.0) == 1800.0, "a slow watch is not made slower than asked"


def test_a_free_seat_is_read_from_the_page_and_a_missing_crn_is_named() -> None:
    page = {"21234": Seats("21234", "BLG 102E", 40, 39)}
    assert free_seat("21234", page, "BLG").free == 1
    with pytest.raises(LookupError, match="CRN 21235 is not on the BLG schedule page"):
        free_seat("21235", page, "BLG")


def test_the_watch_keeps_off_obs_near_a_timed_runs_shot_and_while_it_registers() -> None:
    run = watch()
    far = timed(NOW_NS + int(QUIET_BEFORE_TARGET_S * NS) + NS)
    near = timed(NOW_NS + int(QUIET_BEFORE_TARGET_S * NS) - NS)
    retrying = timed(NOW_NS - 60 * NS, Phase.REGISTERING)
    assert quiet_reason(None, run, NOW_NS) is None
    assert quiet_reason(far, run, NOW_NS) is None
    assert quiet_reason(near, run, NOW_NS) is not None
    assert quiet_reason(retrying, run, NOW_NS) is not None
    other_obs = msgspec.structs.replace(
        near, config=msgspec.structs.replace(near.config, obs_base_url="http://127.0.0.1:8")
    )
    assert quiet_reason(other_obs, run, NOW_NS) is None, "another OBS has its own limits"


def test_val06_goes_back_to_watching_and_success_ends_the_watch() -> None:
    full = answered(watch(), {"21234": "VAL06"})
    assert after_answer(full, []) == BackToWatching("the seat went to someone else first (VAL06)")
    won = answered(full, {"21234": "successResult"}, NOW_NS + 600 * NS)
    assert after_answer(won, []) == Stop(Phase.DONE, "every CRN has a final result")


def test_a_lost_answer_after_a_val06_is_sent_again_not_taken_for_another_val06() -> None:
    full = answered(watch(), {"21234": "VAL06"})
    step = next_step(full, [])
    assert isinstance(step, NextPost)
    lost = with_request(full, RequestArmedPayload("w", 2, ["21234"], [], NOW_NS + 600 * NS))
    lost = with_results(
        lost,
        CrnUpdatePayload(
            run_id="w",
            attempt=2,
            outcome=Outcome.UNKNOWN,
            http_status=None,
            sent_ns=NOW_NS + 600 * NS,
            responded_ns=NOW_NS + 630 * NS,
            results=[],
        ),
    )
    again = after_answer(lost, [])
    assert isinstance(again, NextPost) and again.ecrn == ["21234"], "VAL03 will tell"
    assert again.not_before_ns >= NOW_NS + 635 * NS
    assert worth_a_post(lost, NOW_NS + 640 * NS)


def test_a_drop_that_went_is_not_sent_again() -> None:
    full = answered(watch(drop=("20456",)), {"21234": "VAL06", "20456": "successResult"})
    assert isinstance(after_answer(full, []), BackToWatching)
    # The next seat: the POST carries the add only (core/policy.py through the watch).
    step = next_step(full, [])
    assert isinstance(step, NextPost) and step.ecrn == ["21234"] and step.scrn == []


def test_val21_ends_the_watch_and_max_attempts_bounds_its_posts() -> None:
    banned = answered(watch(), {"21234": "VAL21"})
    step = after_answer(banned, [])
    assert isinstance(step, Stop) and step.phase == Phase.FAILED and "VAL21" in step.reason
    once = answered(watch(max_attempts=1), {"21234": "VAL06"})
    assert after_answer(once, []) == Stop(
        Phase.DONE, "max_attempts (1) reached; 21234 is still full"
    )


def test_the_watch_ends_when_until_passes() -> None:
    run = watch(until_ns=NOW_NS + 3600 * NS)
    assert ended(run, NOW_NS) is None
    stop = ended(run, NOW_NS + 3600 * NS)
    assert stop is not None and stop.phase == Phase.DONE and "no seat in 21234" in stop.reason
    assert ended(watch(), NOW_NS + 10**6 * NS) is None, "no until: until cancelled"


def test_a_token_near_its_end_stalls_only_without_a_login() -> None:
    soon = "2026-02-10T09:05:00+00:00"
    assert token_stall(True, soon, NOW_NS, can_log_in=True) is None
    assert token_stall(True, "2026-02-10T12:00:00+00:00", NOW_NS, can_log_in=False) is None
    assert token_stall(True, None, NOW_NS, can_log_in=False) is None, "no exp: nothing to judge"
    stall = token_stall(True, soon, NOW_NS, can_log_in=False)
    assert stall is not None and "2026-02-10T09:05:00+00:00" in stall
    assert token_stall(True, soon, NOW_NS + 3600 * NS, False) == stall, "the same words"


def test_no_token_at_all_stalls_saying_what_to_do() -> None:
    missing = token_stall(False, None, NOW_NS, can_log_in=False)
    assert missing is not None and "configure one" in missing
    failed = token_stall(False, None, NOW_NS, can_log_in=True)
    assert failed is not None and "login for one failed" in failed


def test_a_login_is_made_when_the_token_runs_short_and_not_hammered_after_a_failure() -> None:
    soon = "2026-02-10T09:05:00+00:00"
    assert not wants_login(True, "2026-02-10T12:00:00+00:00", NOW_NS, None, failed=False)
    assert wants_login(True, soon, NOW_NS, None, failed=False)
    assert not wants_login(True, None, NOW_NS, None, failed=False), "no exp: no login per read"
    assert wants_login(False, None, NOW_NS, None, failed=False), "no token at all"
    assert not wants_login(True, soon, NOW_NS, NOW_NS - 60 * NS, failed=True)
    assert wants_login(True, soon, NOW_NS, NOW_NS - 31 * 60 * NS, failed=True)


def test_a_seat_lost_is_not_chased_again_until_the_page_changes() -> None:
    lost = answered(watch(), {"21234": "VAL06"})
    lost_ns = NOW_NS + NS // 10
    assert worth_a_post(watch(), NOW_NS), "nothing lost yet"
    assert not worth_a_post(lost, NOW_NS + 60 * NS), "the same page, a minute on"
    changed = msgspec.structs.replace(
        lost, seats=SeatsSeenPayload(run_id="w", quota=40, enrolled=40, at_ns=lost_ns + NS)
    )
    assert worth_a_post(changed, NOW_NS + 60 * NS)
    assert worth_a_post(lost, lost_ns + int(SAME_SEAT_AGAIN_S * NS))
