"""What `start` and `watch_seat` check, on plain values: the first failing check refuses, else
it goes ahead."""

from datetime import UTC, datetime, timedelta

import msgspec

from obsd.core.config import Config
from obsd.core.events import Actor, CalibrationPayload, WatchPlan
from obsd.core.phases import Phase
from obsd.core.protocol import ErrorCode, WatchSeat
from obsd.core.runs import RunState
from obsd.core.start import GoAhead, Refusal, WatchGo, check_start, check_watch
from obsd.core.state import DaemonState
from obsd.core.timing import epoch_ns
from obsd.core.token import TokenInfo

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TARGET = NOW + timedelta(hours=2)
PLAN = Config(ecrn=("21234",), target=TARGET.isoformat())


def token(expires_after_target: timedelta) -> TokenInfo:
    exp = (TARGET + expires_after_target).isoformat().replace("+00:00", "Z")
    return TokenInfo(fingerprint="sha256:abc", exp=exp)


def refusal(state: DaemonState, info: TokenInfo | None = None) -> tuple[ErrorCode, str]:
    verdict = check_start(state, info, None, NOW)
    assert isinstance(verdict, Refusal), verdict
    return verdict.code, verdict.message


def test_a_ready_plan_goes_ahead_with_the_token_warnings() -> None:
    verdict = check_start(DaemonState(config=PLAN), token(timedelta(minutes=30)), None, NOW)
    assert verdict == GoAhead(
        epoch_ns(TARGET),
        token(timedelta(minutes=30)),
        ["the token expires 30 min after the target"],
    )


def test_each_missing_piece_is_named() -> None:
    assert refusal(DaemonState()) == (
        ErrorCode.NOT_READY,
        "nothing to register: configure ecrn and/or scrn",
    )
    no_target = msgspec.structs.replace(PLAN, target=None)
    assert refusal(DaemonState(config=no_target))[1].startswith("no target")
    long_past = msgspec.structs.replace(PLAN, target=(NOW - timedelta(hours=3)).isoformat())
    assert refusal(DaemonState(config=long_past))[1] == (
        f"the target {long_past.target} has passed, more than late_start_window (3:00:00) ago; "
        "configure the new opening"
    )
    never_late = msgspec.structs.replace(
        PLAN, target=(NOW - timedelta(seconds=1)).isoformat(), late_start_window=0.0
    )
    assert refusal(DaemonState(config=never_late))[1].endswith(
        "has passed; configure the new opening"
    )
    far = msgspec.structs.replace(PLAN, target=(NOW + timedelta(days=400)).isoformat())
    assert "more than 365 days ahead" in refusal(DaemonState(config=far))[1]
    assert refusal(DaemonState(config=PLAN))[0] is ErrorCode.TOKEN_MISSING


def test_a_token_that_expires_too_soon_after_the_target_is_refused() -> None:
    code, message = refusal(DaemonState(config=PLAN), token(timedelta(minutes=5)))
    assert code is ErrorCode.TOKEN_EXPIRED and "less than 10 min after the target" in message


def _run(run_id: str, phase: str = "calibrating") -> RunState:
    return RunState(
        run_id=run_id,
        created_at="2026-12-01T08:00:00Z",
        actor=Actor(0, 1),
        config=PLAN,
        token=token(timedelta(hours=3)),
        target_ns=epoch_ns(TARGET),
        phase=msgspec.convert(phase, Phase),
    )


def test_a_run_in_progress_comes_first() -> None:
    run = _run("r1")
    state = DaemonState(config=PLAN, runs={"r1": run}, active_run="r1")
    assert refusal(state) == (ErrorCode.RUN_IN_PROGRESS, "run r1 is calibrating; cancel it first")


def test_a_start_after_a_calibration_without_trusted_time_goes_ahead_with_a_warning() -> None:
    """The servers may answer by the opening; the run keeps trying, and never guesses."""
    untrusted = CalibrationPayload(
        run_id=None,
        ntp_server=None,
        ntp_offset_ms=None,
        ntp_delay_ms=None,
        ntp_samples=0,
        ntp_error="no trustworthy time: no NTP server answered (pool)",
        rtt_min_ms=None,
        rtt_median_ms=None,
        rtt_jitter_ms=None,
        rtt_samples=0,
        date_offset_s=None,
        date_check="no Date header",
        send_delay_ms=None,
    )
    state = DaemonState(config=PLAN, calibration=untrusted)
    verdict = check_start(state, token(timedelta(hours=3)), None, NOW)
    assert isinstance(verdict, GoAhead)
    assert verdict.warnings == [
        "the last calibration found no trustworthy time: no NTP server answered (pool); the "
        "run keeps trying until the opening and will not fire on an unknown clock"
    ]


def test_a_target_that_passed_within_the_window_is_a_late_start_that_goes_ahead() -> None:
    late = msgspec.structs.replace(
        PLAN, target=(NOW - timedelta(minutes=2, seconds=10)).isoformat()
    )
    # The token is judged from now, when the late run fires, not from the passed target.
    info = TokenInfo(fingerprint="sha256:abc", exp="2026-12-01T15:00:00Z")
    verdict = check_start(DaemonState(config=late), info, None, NOW)
    assert isinstance(verdict, GoAhead), verdict
    assert verdict.target_ns == epoch_ns(NOW - timedelta(minutes=2, seconds=10))
    assert verdict.warnings == [
        "the target passed 2 min 10 s ago: a late start, the first POST goes out at once "
        "(never inside OBS's debounce of an earlier one)"
    ]
    # 9 minutes left would be 11 min 10 s after the passed target, but the run fires now.
    soon = TokenInfo(fingerprint="sha256:abc", exp="2026-12-01T09:09:00Z")
    code, message = refusal(DaemonState(config=late), soon)
    assert code is ErrorCode.TOKEN_EXPIRED and "less than 10 min after the target" in message


def test_with_credentials_a_token_that_would_not_do_is_fine_while_a_login_can_still_come() -> None:
    state = DaemonState(config=PLAN)
    expired = token(-timedelta(hours=3))
    ahead = check_start(state, expired, None, NOW, can_log_in=True)
    assert isinstance(ahead, GoAhead) and ahead.token == expired
    assert any(w.endswith("; obsd logs in for a fresh one") for w in ahead.warnings)
    assert isinstance(check_start(state, None, None, NOW, can_log_in=True), GoAhead)
    # A minute before the target no login may start (token_refresh.LATEST_BEFORE_S): refused.
    late = NOW + timedelta(hours=2) - timedelta(seconds=60)
    too_late = check_start(state, None, None, late, can_log_in=True)
    assert isinstance(too_late, Refusal) and too_late.code == ErrorCode.TOKEN_MISSING
    stale = check_start(state, expired, None, late, can_log_in=True)
    assert isinstance(stale, Refusal) and stale.code == ErrorCode.TOKEN_EXPIRED


def watch_request(**fields: object) -> WatchSeat:
    return msgspec.convert({"id": 1, "crn": "21234", "branch": "BLG"} | fields, WatchSeat)


def watch_refusal(request: WatchSeat, state: DaemonState | None = None) -> tuple[ErrorCode, str]:
    verdict = check_watch(
        state or DaemonState(), token(timedelta(hours=6)), None, NOW, request=request
    )
    assert isinstance(verdict, Refusal), verdict
    return verdict.code, verdict.message


def test_a_watch_goes_ahead_beside_a_timed_run_with_its_plan() -> None:
    state = DaemonState(config=PLAN, active_run="r", runs={"r": _run("r", "waiting")})
    until = (NOW + timedelta(days=2)).isoformat()
    verdict = check_watch(
        state, token(timedelta(hours=6)), None, NOW, request=watch_request(every=120, until=until)
    )
    assert isinstance(verdict, WatchGo) and verdict.warnings == []
    assert verdict.plan == WatchPlan(
        crn="21234",
        branch="BLG",
        drop=[],
        every_s=120.0,
        until_ns=epoch_ns(NOW + timedelta(days=2)),
    )


def test_a_drop_is_refused_until_its_risk_is_accepted_and_then_said_again() -> None:
    code, message = watch_refusal(watch_request(drop=["20456"]))
    assert code == ErrorCode.VALIDATION_ERROR
    assert "applies a drop even when the add in the same request fails" in message
    assert "--accept-drop-risk" in message
    verdict = check_watch(
        DaemonState(),
        token(timedelta(hours=6)),
        None,
        NOW,
        request=watch_request(drop=["20456"], accept_drop_risk=True),
    )
    assert isinstance(verdict, WatchGo) and verdict.plan.drop == ["20456"]
    assert any("you lose the dropped course" in w for w in verdict.warnings)


def test_a_watch_names_each_mistake() -> None:
    assert (
        "both watched and dropped"
        in watch_refusal(watch_request(drop=["21234"], accept_drop_risk=True))[1]
    )
    assert "UTC offset" in watch_refusal(watch_request(until="2026-12-02T10:00"))[1]
    assert "has passed" in watch_refusal(watch_request(until="2026-11-30T10:00:00+03:00"))[1]
    watched = msgspec.structs.replace(
        _run("w", "watching"), watch=WatchPlan(crn="21234", branch="BLG", every_s=60.0)
    )
    assert watch_refusal(watch_request(), DaemonState(runs={"w": watched})) == (
        ErrorCode.RUN_IN_PROGRESS,
        "CRN 21234 is watched already by run w",
    )
    verdict = check_watch(DaemonState(), None, None, NOW, request=watch_request())
    assert isinstance(verdict, Refusal) and verdict.code == ErrorCode.TOKEN_MISSING
    assert isinstance(
        check_watch(DaemonState(), None, None, NOW, True, request=watch_request()), WatchGo
    )
