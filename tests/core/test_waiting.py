"""The wait before the shot as a pure schedule: what the driver does next, at any instant."""

import msgspec

from obsd.core.events import CalibrationPayload
from obsd.core.timing import NS
from obsd.core.waiting import (
    FINAL_APPROACH_S,
    KEEPALIVE_EVERY_S,
    LOG_EVERY_RECHECK_WITHIN_S,
    LOG_UNCHANGED_EVERY_S,
    RECHECK_NTP_BEFORE_S,
    RECHECK_NTP_EVERY_S,
    UNSETTLED_RECHECK_EVERY_S,
    FinalApproach,
    ProbeObs,
    RecheckNtp,
    Tick,
    WaitProgress,
    WaitStep,
    countdown_tick,
    next_wait_step,
    recheck_is_news,
)

SHOT = 100_000 * NS


def at(seconds_before: float, progress: WaitProgress | None = None) -> WaitStep:
    now = SHOT - int(seconds_before * NS)
    return next_wait_step(SHOT, now, progress or WaitProgress(now, now))


def test_the_countdown_ticks_each_second_only_in_the_last_minute() -> None:
    ticks = [countdown_tick(s) for s in (0.5, 59, 61, 599, 601, 3599, 3601, 7 * 86_400)]
    assert ticks == [1, 1, 10, 10, 60, 60, 600, 600]


def test_far_away_it_counts_down_and_sleeps_to_the_next_whole_minute() -> None:
    step = at(3600.5)
    assert step == Tick(3600.5, SHOT - 3600 * NS)


def test_the_last_wake_up_before_the_shot_is_the_final_approach() -> None:
    step = at(1.8, WaitProgress(SHOT, SHOT, rechecks_before_shot=2))
    assert isinstance(step, Tick) and step.wake_ns == SHOT - int(FINAL_APPROACH_S * NS)
    assert at(FINAL_APPROACH_S) == FinalApproach()


def test_ntp_is_rechecked_every_ten_minutes_and_twice_close_to_the_shot() -> None:
    now = SHOT - 3600 * NS
    stale = WaitProgress(now, now - int(RECHECK_NTP_EVERY_S * NS) - 1)
    assert next_wait_step(SHOT, now, stale) == RecheckNtp(before_shot=False)
    assert at(9.0) == RecheckNtp(before_shot=True, probe_obs=True), "with a fresh Date"
    now = SHOT - 3 * NS
    once = WaitProgress(now, now, rechecks_before_shot=1)
    assert next_wait_step(SHOT, now, once) == RecheckNtp(before_shot=True, probe_obs=True)
    early = SHOT - 4 * NS
    assert next_wait_step(SHOT, early, WaitProgress(early, early, 1)) == Tick(
        4.0, SHOT - int(RECHECK_NTP_BEFORE_S[1] * NS)
    ), "it wakes for the last re-check, not at the next whole second"


def test_an_unsettled_estimate_is_rechecked_every_thirty_seconds() -> None:
    now = SHOT - 3600 * NS
    progress = WaitProgress(now, now - int(UNSETTLED_RECHECK_EVERY_S * NS) - 1)
    assert isinstance(next_wait_step(SHOT, now, progress), Tick)
    assert next_wait_step(SHOT, now, progress, settled=False) == RecheckNtp(before_shot=False)


def test_a_jump_of_the_system_clock_breaks_even_into_the_final_approach() -> None:
    now = SHOT - NS
    progress = WaitProgress(now, now, rechecks_before_shot=2)
    assert next_wait_step(SHOT, now, progress) == FinalApproach()
    assert next_wait_step(SHOT, now, progress, jumped=True) == RecheckNtp(
        before_shot=False, jumped=True, probe_obs=False
    ), "too close to the shot for a probe"
    fresh = WaitProgress(SHOT, SHOT, rechecks_before_shot=2)
    assert isinstance(next_wait_step(SHOT, SHOT - 9 * NS, fresh), Tick)


def test_probes_only_in_the_last_minute_and_never_in_the_last_two_seconds() -> None:
    def probing(seconds_before: float) -> bool:
        now = SHOT - int(seconds_before * NS)
        long_ago = now - int(KEEPALIVE_EVERY_S * NS)
        progress = WaitProgress(long_ago, now, rechecks_before_shot=2)
        return next_wait_step(SHOT, now, progress) == ProbeObs()

    assert [probing(s) for s in (300, 61, 59, 11, 3, 1.9)] == [
        False,
        False,
        True,
        True,
        True,
        False,
    ]
    now = SHOT - 30 * NS
    assert at(30, WaitProgress(now - NS, now)) != ProbeObs(), "not again within 5 s"


def calibration(**fields: object) -> CalibrationPayload:
    base: dict[str, object] = {
        "run_id": "r",
        "ntp_server": "a:123",
        "ntp_offset_ms": 1.0,
        "ntp_delay_ms": 2.0,
        "ntp_samples": 2,
        "time_status": "agreed",
        "rtt_min_ms": 1.0,
        "rtt_median_ms": 1.0,
        "rtt_jitter_ms": 0.1,
        "rtt_samples": 5,
        "date_offset_s": 0.0,
        "date_check": "ok",
        "send_delay_ms": 0.1,
    }
    return msgspec.convert(base | fields, CalibrationPayload)


def test_a_far_recheck_that_found_nothing_new_is_not_written() -> None:
    written = calibration()
    same_but_later = calibration(ntp_offset_ms=1.7, rtt_median_ms=1.3)
    far, near = 2 * LOG_EVERY_RECHECK_WITHIN_S, LOG_EVERY_RECHECK_WITHIN_S
    assert not recheck_is_news(written, same_but_later, far, 600)
    assert recheck_is_news(written, same_but_later, near, 600), "near the shot: every one"
    assert recheck_is_news(written, same_but_later, far, LOG_UNCHANGED_EVERY_S), "hourly"
    assert recheck_is_news(None, same_but_later, far, 0)
    conflict = calibration(time_status="conflict", time_conflict="no majority")
    assert recheck_is_news(written, conflict, far, 600), "a verdict that changed"
